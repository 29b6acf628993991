"""Deliver every event twice and in shuffled order: final positions (availability) and
order states (order_to_ship) equal those of a clean run.

1. Clean run: the real WMS app posts receipts, fulfillment orders and shipments over
   two warehouses and several skus; its outbox relay publishes onto bus A, from which a
   fresh availability and order_to_ship consume in order. Their databases are the
   reference (and availability's on_hand must equal the WMS's own stock).
2. The harness takes every event of bus A, publishes each one twice, in a shuffled
   order, onto a fresh bus B; a fresh availability and order_to_ship (own databases,
   the same seeded orders) consume them. Their final state must equal the clean run's.

The shipments ship most of what is on hand, so applying a warehouse's stock events out
of order changes the result (a shipment before its receipt finds nothing to take).
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import insert

from process_apis.order_to_ship import db as orders_db
from process_apis.order_to_ship.orders.events import CONSUMER_GROUP as ORDERS_GROUP
from shared.db import Database
from shared.events.catalog import STREAM_WMS
from shared.events.envelope import Event
from shared.topology import SERVICES
from tests.faults.helpers import bus_at, count, group_settled, positions, query, stream_events
from tests.support.polling import eventually_async
from tests.support.stack import build_service_app, stack_settings
from tests.support.tokens import TestIssuer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

SEED = 20_240_611
WAREHOUSES = ("WH-A", "WH-B")
SKUS = ("SKU-1", "SKU-2", "SKU-3", "SKU-4")
STEPS = 60
URLS = {spec.name: f"http://127.0.0.1:{spec.port}" for spec in SERVICES}

Order = tuple[str, str, list[tuple[str, int]]]  # order id, warehouse, lines


def settings_for(service: str, data_dir: Path, bus_url: str, issuer: TestIssuer) -> Any:
    return msgspec.structs.replace(stack_settings(service, data_dir, URLS, issuer), bus_url=bus_url)


@asynccontextmanager
async def running(
    services: list[str], data_dir: Path, bus_url: str, issuer: TestIssuer
) -> AsyncIterator[dict[str, AsyncTestClient[Any]]]:
    """The services' apps with their lifespans (relay, consumers) running."""
    async with AsyncExitStack() as stack:
        clients = {}
        for service in services:
            app = build_service_app(
                service, settings_for(service, data_dir, bus_url, issuer), issuer
            )
            clients[service] = await stack.enter_async_context(AsyncTestClient(app))
        yield clients


async def produce_clean_history(
    data_dir: Path, bus_url: str, issuer: TestIssuer
) -> tuple[list[Order], dict[tuple[str, str], int]]:
    """Drives the WMS through a seeded random history; returns the orders it shipped
    and the WMS's physical stock at the end (per warehouse and sku)."""
    rng = random.Random(SEED)
    stock = {(wh, sku): 0 for wh in WAREHOUSES for sku in SKUS}
    orders: list[Order] = []
    token = issuer.token("wms:read wms:write", audience="wms")
    async with running(["wms"], data_dir, bus_url, issuer) as clients:
        wms = clients["wms"]
        wms.headers["Authorization"] = f"Bearer {token}"
        keys = iter(range(1_000_000))

        async def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
            response = await wms.post(
                f"/wms/v1{path}", json=body, headers={"Idempotency-Key": f"k-{next(keys)}"}
            )
            assert response.status_code == 201, response.text
            return dict(response.json())

        for warehouse in WAREHOUSES:
            await post("/warehouses", {"warehouse_id": warehouse, "name": warehouse})
        for step in range(STEPS):
            warehouse = rng.choice(WAREHOUSES)
            in_stock = [sku for sku in SKUS if stock[(warehouse, sku)] > 0]
            if not in_stock or rng.random() < 0.45:
                lines = [(sku, rng.randint(1, 20)) for sku in rng.sample(SKUS, rng.randint(1, 2))]
                await post(
                    "/receipts",
                    {
                        "warehouse_id": warehouse,
                        "lines": [{"sku": s, "quantity": q} for s, q in lines],
                    },
                )
                for sku, quantity in lines:
                    stock[(warehouse, sku)] += quantity
                continue
            # An order for most of what is there, shipped in one or two shipments; now
            # and then the second never comes (the order stays partially shipped).
            chosen = rng.sample(in_stock, min(len(in_stock), rng.randint(1, 2)))
            lines = [
                (sku, rng.randint(max(1, stock[(warehouse, sku)] // 2), stock[(warehouse, sku)]))
                for sku in chosen
            ]
            order_id = f"ORD-{step:03d}"
            orders.append((order_id, warehouse, lines))
            fo = await post(
                "/fulfillment-orders",
                {
                    "order_id": order_id,
                    "warehouse_id": warehouse,
                    "lines": [{"sku": s, "quantity": q} for s, q in lines],
                },
            )
            parts = [lines]
            if any(q > 1 for _, q in lines) and rng.random() < 0.5:
                first = [(s, q // 2) for s, q in lines if q // 2 > 0]
                parts = [first]
                if rng.random() < 0.7:
                    parts.append([(s, q - dict(first).get(s, 0)) for s, q in lines])
            for n, part in enumerate(parts):
                await post(
                    f"/fulfillment-orders/{fo['fulfillment_order_id']}/shipments",
                    {
                        "carrier": "UPS",
                        "tracking_number": f"1Z{step:03d}{n}",
                        "lines": [{"sku": s, "quantity": q} for s, q in part],
                    },
                )
                for sku, quantity in part:
                    stock[(warehouse, sku)] -= quantity
        wms_db = data_dir / "wms.db"
        relayed = await eventually_async(
            lambda: count(wms_db, "outbox", "published_at IS NULL") == 0, timeout=20
        )
        assert relayed, "the WMS outbox relay did not publish everything"
    return orders, {key: quantity for key, quantity in stock.items() if quantity}


async def seed_orders(data_dir: Path, orders: list[Order], issuer: TestIssuer) -> None:
    """The orders as order_to_ship holds them once released to the warehouse."""
    settings = settings_for("order_to_ship", data_dir, "sqlite:///unused", issuer)
    db = Database(settings.database_url, orders_db.metadata)
    await db.create_schema()
    now = datetime.now(UTC)
    try:
        async with db.transaction() as tx:
            for order_id, _, lines in orders:
                await tx.conn.execute(
                    insert(orders_db.orders).values(
                        order_id=order_id,
                        customer_id="CUST-1",
                        channel="ecommerce",
                        policy="reject",
                        currency="USD",
                        status="released",
                        version=2,
                        client_id="test",
                        idempotency_key=order_id,
                        created_at=now,
                        updated_at=now,
                    )
                )
                await tx.conn.execute(
                    insert(orders_db.order_lines),
                    [
                        {
                            "order_id": order_id,
                            "line_no": n,
                            "sku": sku,
                            "quantity": quantity,
                            "unit_price_minor": 100,
                            "allocated": quantity,
                            "backordered": 0,
                            "released": quantity,
                            "shipped": 0,
                        }
                        for n, (sku, quantity) in enumerate(lines, start=1)
                    ],
                )
    finally:
        await db.dispose()


def order_states(data_dir: Path) -> dict[str, Any]:
    db = data_dir / "order_to_ship.db"
    return {
        "orders": query(db, "SELECT order_id, status FROM orders ORDER BY order_id"),
        "lines": query(
            db, "SELECT order_id, sku, quantity, shipped FROM order_lines ORDER BY order_id, sku"
        ),
        "shipments": query(
            db, "SELECT shipment_id, order_id FROM order_shipments ORDER BY shipment_id"
        ),
    }


def final_state(data_dir: Path) -> dict[str, Any]:
    return {"positions": positions(data_dir / "availability.db"), **order_states(data_dir)}


async def consume(
    data_dir: Path,
    bus_url: str,
    orders: list[Order],
    issuer: TestIssuer,
    done: Callable[[], bool],
) -> bool:
    """Runs availability and order_to_ship on the bus until ``done`` and both groups have
    nothing pending or unread; False if that does not happen in time."""
    await seed_orders(data_dir, orders, issuer)
    async with (
        running(["availability", "order_to_ship"], data_dir, bus_url, issuer),
        bus_at(bus_url) as bus,
    ):

        async def settled() -> bool:
            return (
                done()
                and await group_settled(bus, "availability")
                and await group_settled(bus, ORDERS_GROUP)
            )

        return bool(await eventually_async(settled, timeout=45, interval=0.1))


def stock_events(events: list[Event]) -> list[Event]:
    return [e for e in events if e.type in ("receipt.posted", "shipment.dispatched")]


async def test_c_every_event_twice_in_shuffled_order_ends_like_a_clean_run(
    new_bus_url: Callable[[], str], tmp_path: Path, issuer: TestIssuer
) -> None:
    clean_dir, replay_dir = tmp_path / "clean", tmp_path / "replay"
    bus_a, bus_b = new_bus_url(), new_bus_url()

    # 1. The clean run.
    orders, wms_stock = await produce_clean_history(clean_dir, bus_a, issuer)
    async with bus_at(bus_a) as bus:
        events = await stream_events(bus)
    handled = stock_events(events)
    assert len(handled) > 60 and len(orders) > 10  # the history is not trivial

    def clean_done() -> bool:
        return count(clean_dir / "availability.db", "inbox") >= len(handled)

    assert await consume(clean_dir, bus_a, orders, issuer, clean_done), "clean run unfinished"
    clean = final_state(clean_dir)
    clean_on_hand = {(row[0], row[1]): row[3] for row in clean["positions"] if row[3]}
    assert clean_on_hand == {(sku, wh): q for (wh, sku), q in wms_stock.items()}
    assert {status for _, status in clean["orders"]} >= {"shipped", "partially_shipped"}

    # 2. Every event twice, shuffled, on a fresh bus, into fresh consumers.
    doubled = events + events
    rng = random.Random(SEED)
    rng.shuffle(doubled)
    async with bus_at(bus_b) as bus:
        for event in doubled:
            await bus.publish(STREAM_WMS, [event])
        stored = await stream_events(bus)
    # The engines keep a re-published event (consumers dedup): each really comes twice.
    assert len(stored) == 2 * len(events)
    assert [e.id for e in stored] == [e.id for e in doubled]

    finished = await consume(
        replay_dir, bus_b, orders, issuer, lambda: final_state(replay_dir) == clean
    )
    replay = final_state(replay_dir)
    assert finished, "the shuffled, doubled replay did not settle like the clean run"
    assert replay["positions"] == clean["positions"]
    assert replay["orders"] == clean["orders"]
    assert replay["lines"] == clean["lines"]
    assert replay["shipments"] == clean["shipments"]
    # Each event had its effect once: one inbox row and one ledger entry set per event.
    assert count(replay_dir / "availability.db", "inbox") == count(
        clean_dir / "availability.db", "inbox"
    )
    assert count(replay_dir / "availability.db", "movements") == count(
        clean_dir / "availability.db", "movements"
    )
