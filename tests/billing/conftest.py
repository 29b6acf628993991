from __future__ import annotations

import pytest

from tests.orders.helpers import new_warehouse
from tests.support.service import stack_fixtures
from tests.support.stack import Stack

SERVICES = ["erp", "wms", "availability", "order_to_ship", "billing"]

stack, full_stack = stack_fixtures("billing", SERVICES)


@pytest.fixture
def warehouse(full_stack: Stack) -> str:
    return new_warehouse(full_stack)
