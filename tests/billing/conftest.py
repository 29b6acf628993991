from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.orders.seed import new_warehouse
from tests.support.stack import Stack
from tests.support.tokens import TestIssuer

SERVICES = ["erp", "wms", "availability", "order_to_ship", "billing"]


@pytest.fixture(scope="package")
def issuer() -> TestIssuer:
    return TestIssuer()


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory, issuer: TestIssuer) -> Iterator[Stack]:
    with Stack(tmp_path_factory.mktemp("billing-stack"), issuer, SERVICES) as running:
        yield running


@pytest.fixture
def full_stack(stack: Stack) -> Stack:
    missing = [name for name in ("wms", "availability") if not stack.has(name)]
    if missing:
        pytest.fail(f"services not importable: {', '.join(missing)}")
    return stack


@pytest.fixture
def warehouse(full_stack: Stack) -> str:
    return new_warehouse(full_stack)
