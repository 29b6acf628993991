from __future__ import annotations

import pytest

from tests.orders.helpers import new_warehouse
from tests.support.service import stack_fixtures
from tests.support.stack import Stack

SERVICES = ["erp", "wms", "availability", "order_to_ship", "billing"]
# Short enough for the crash-resume test, long enough not to race ordinary requests.
OPTIONS = {"order_to_ship": {"resume_after": 3.0, "resume_every": 0.5}}

stack, full_stack = stack_fixtures("orders", SERVICES, OPTIONS)


@pytest.fixture
def warehouse(full_stack: Stack) -> str:
    return new_warehouse(full_stack)
