from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from experience_apis.portal.app import create_app
from shared.settings import load_settings
from tests.orders.helpers import new_warehouse
from tests.portal.live import STACK_SERVICES, Live, live_portal
from tests.portal.upstreams import (
    UpstreamState,
    availability_app,
    billing_app,
    orders_app,
)
from tests.support.stack import Stack, ThreadServer
from tests.support.tokens import TestIssuer

# A portal caller's token names every API it reaches: the portal and, because the portal
# forwards it, the process APIs behind it.
AUDIENCES = ["graphql", "orders", "billing", "availability"]
PORTAL_SCOPES = "portal orders:read billing:read inventory:read"

MONEY = {"amount_minor": 1250, "currency": "USD"}

ORDERS: dict[str, dict[str, Any]] = {
    "O-1": {
        "order_id": "O-1",
        "status": "partially_shipped",
        "customer_id": "C1",
        "channel": "portal",
        "policy": "partial",
        "currency": "USD",
        "lines": [
            {
                "sku": "SKU-A",
                "quantity": 5,
                "allocated": 5,
                "backordered": 0,
                "shipped": 2,
                "unit_price": MONEY,
            },
            {
                "sku": "SKU-B",
                "quantity": 3,
                "allocated": 1,
                "backordered": 2,
                "shipped": 0,
                "unit_price": {"amount_minor": 3_000_000_000_00, "currency": "USD"},
            },
        ],
        "shipments": [
            {
                "shipment_id": "S-1",
                "carrier": "UPS",
                "tracking_number": "1Z999",
                "lines": [{"sku": "SKU-A", "quantity": 2}],
                "shipped_at": "2026-01-02T10:00:00Z",
            },
        ],
        "created_at": "2026-01-01T09:00:00Z",
        "updated_at": "2026-01-02T10:00:00Z",
    },
    "O-2": {
        "order_id": "O-2",
        "status": "shipped",
        "customer_id": "C1",
        "channel": "portal",
        "policy": "reject",
        "currency": "USD",
        "lines": [
            {
                "sku": "SKU-A",
                "quantity": 1,
                "allocated": 1,
                "backordered": 0,
                "shipped": 1,
                "unit_price": MONEY,
            }
        ],
        "shipments": [
            {
                "shipment_id": "S-2",
                "carrier": "DHL",
                "tracking_number": "JD01",
                "lines": [{"sku": "SKU-A", "quantity": 1}],
                "shipped_at": "2026-01-03T10:00:00Z",
            },
        ],
        "created_at": "2026-01-01T09:00:00Z",
        "updated_at": "2026-01-03T10:00:00Z",
    },
    "O-BAD": {"order_id": "O-BAD", "status": "accepted", "customer_id": "C1"},  # no lines
    "O-9": {
        "order_id": "O-9",
        "status": "accepted",
        "customer_id": "C2",
        "channel": "edi",
        "lines": [
            {
                "sku": "SKU-A",
                "quantity": 1,
                "allocated": 1,
                "backordered": 0,
                "shipped": 0,
                "unit_price": MONEY,
            }
        ],
        "shipments": [],
    },
}

# Two well-formed orders of C3 for the list queries (C1's O-BAD breaks the contract).
for _n in (30, 31):
    ORDERS[f"O-{_n}"] = {
        "order_id": f"O-{_n}",
        "status": "released",
        "customer_id": "C3",
        "channel": "portal",
        "currency": "USD",
        "lines": [
            {
                "sku": "SKU-A",
                "quantity": 1,
                "allocated": 1,
                "backordered": 0,
                "shipped": 0,
                "unit_price": MONEY,
            }
        ],
        "shipments": [],
    }


def _invoice(
    invoice_id: str, order_id: str, shipment_id: str, customer: str, qty: int
) -> dict[str, Any]:
    amount = {"amount_minor": 1250 * qty, "currency": "USD"}
    return {
        "invoice_id": invoice_id,
        "order_id": order_id,
        "shipment_id": shipment_id,
        "customer_id": customer,
        "status": "issued",
        "total": amount,
        "lines": [{"sku": "SKU-A", "quantity": qty, "unit_price": MONEY, "amount": amount}],
        "issued_at": "2026-01-04T00:00:00Z",
    }


INVOICES = [
    _invoice("INV-1", "O-1", "S-1", "C1", 2),
    _invoice("INV-2", "O-2", "S-2", "C1", 1),
    _invoice("INV-9", "O-9", "S-9", "C2", 1),
    _invoice("INV-30", "O-30", "S-30", "C3", 1),
]

ITEMS = {
    "SKU-A": {
        "sku": "SKU-A",
        "available_to_promise": 7,
        "as_of": "2026-01-05T12:00:00Z",
        "locations": [
            {
                "location_id": "WH-EAST",
                "on_hand": 10,
                "allocated": 4,
                "reserved": 0,
                "external_committed": 0,
                "quality_control": 0,
                "damaged": 0,
                "hold": 0,
                "safety_stock": 1,
                "available_to_promise": 5,
            },
            {
                "location_id": "WH-WEST",
                "on_hand": 2,
                "allocated": 0,
                "reserved": 0,
                "external_committed": 0,
                "quality_control": 0,
                "damaged": 0,
                "hold": 0,
                "safety_stock": 0,
                "available_to_promise": 2,
            },
        ],
    }
}


@pytest.fixture(scope="session")
def upstream_state() -> UpstreamState:
    return UpstreamState(orders=ORDERS, invoices=INVOICES, items=ITEMS)


@pytest.fixture(scope="session")
def upstream_urls(issuer: TestIssuer, upstream_state: UpstreamState) -> Iterator[dict[str, str]]:
    servers = {
        "order_to_ship": ThreadServer(orders_app(issuer, upstream_state), health_path=None),
        "billing": ThreadServer(billing_app(issuer, upstream_state), health_path=None),
        "availability": ThreadServer(availability_app(issuer, upstream_state), health_path=None),
    }
    try:
        for server in servers.values():
            server.start(timeout=10)
        yield {name: server.url for name, server in servers.items()}
    finally:
        for server in servers.values():
            server.stop()


@pytest.fixture
def upstreams(upstream_state: UpstreamState) -> UpstreamState:
    upstream_state.reset()
    return upstream_state


@pytest.fixture
def portal_settings(tmp_path: Path, issuer: TestIssuer, upstream_urls: dict[str, str]) -> Any:
    settings = load_settings("portal", data_dir=tmp_path)
    return msgspec.structs.replace(
        settings,
        issuer=issuer.issuer,
        service_urls={**settings.service_urls, **upstream_urls},
    )


@pytest.fixture
async def portal(
    portal_settings: Any, issuer: TestIssuer, upstreams: UpstreamState
) -> AsyncIterator[AsyncTestClient[Any]]:
    app = create_app(portal_settings, key_source=issuer.key_source())
    async with AsyncTestClient(app=app) as client:
        yield client


@pytest.fixture
def token(issuer: TestIssuer) -> Callable[..., str]:
    def mint(
        scopes: str = PORTAL_SCOPES,
        *,
        customer_id: str | None = "C1",
        audience: list[str] | str = AUDIENCES,
    ) -> str:
        return issuer.token(scopes, audience=audience, customer_id=customer_id)

    return mint


# -- the real stack (tests/portal/live.py) -------------------------------------------
@pytest.fixture(scope="package")
def live_stack(tmp_path_factory: pytest.TempPathFactory, issuer: TestIssuer) -> Iterator[Stack]:
    with Stack(tmp_path_factory.mktemp("portal-stack"), issuer, STACK_SERVICES) as running:
        missing = [s for s in STACK_SERVICES if not running.has(s)]
        assert not missing, f"services not importable: {missing}"
        yield running


@pytest.fixture(scope="package")
def live_warehouse(live_stack: Stack) -> str:
    return new_warehouse(live_stack)


@pytest.fixture
async def live(live_stack: Stack) -> AsyncIterator[Live]:
    for app, calls in live_portal(live_stack):
        async with AsyncTestClient(app=app) as client:
            yield Live(live_stack, client, calls)
