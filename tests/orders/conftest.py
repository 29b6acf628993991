from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.orders.seed import new_warehouse
from tests.support.stack import Stack
from tests.support.tokens import TestIssuer

SERVICES = ["erp", "wms", "availability", "order_to_ship", "billing"]
# Short enough for the crash-resume test, long enough not to race ordinary requests.
OPTIONS = {"order_to_ship": {"resume_after": 3.0, "resume_every": 0.5}}


@pytest.fixture(scope="package")
def issuer() -> TestIssuer:
    return TestIssuer()


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory, issuer: TestIssuer) -> Iterator[Stack]:
    with Stack(
        tmp_path_factory.mktemp("orders-stack"), issuer, SERVICES, options=OPTIONS
    ) as running:
        yield running


@pytest.fixture
def full_stack(stack: Stack) -> Stack:
    """The stack with WMS and availability (a missing one fails, never skips)."""
    missing = [name for name in ("wms", "availability") if not stack.has(name)]
    if missing:
        pytest.fail(f"services not importable: {', '.join(missing)}")
    return stack


@pytest.fixture
def warehouse(full_stack: Stack) -> str:
    return new_warehouse(full_stack)
