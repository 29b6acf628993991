"""Test data through the real APIs (ERP customers and items, WMS stock), plus a back
door that writes an order straight into the orders database for the tests of event
handling that must run before the WMS and availability services exist."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import httpx
import msgspec

from shared.events.catalog import STREAM_WMS
from shared.events.envelope import Event
from tests.support.events import shipment_dispatched
from tests.support.polling import wait_until
from tests.support.stack import Stack


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def new_customer(
    stack: Stack, *, credit: int = 10**12, currency: str = "USD", customer_id: str | None = None
) -> str:
    customer_id = customer_id or uid("CUST")
    with stack.client("erp", "erp:write") as erp:
        response = erp.post(
            "/erp/v1/customers",
            json={
                "customer_id": customer_id,
                "name": f"Customer {customer_id}",
                "credit_limit": {"amount_minor": credit, "currency": currency},
            },
        )
    assert response.status_code == 201, response.text
    return customer_id


def new_item(stack: Stack, *, price: int = 1250, currency: str = "USD") -> str:
    sku = uid("SKU")
    with stack.client("erp", "erp:write") as erp:
        response = erp.post(
            "/erp/v1/items",
            json={
                "sku": sku,
                "name": f"Item {sku}",
                "unit_price": {"amount_minor": price, "currency": currency},
            },
        )
    assert response.status_code == 201, response.text
    return sku


def new_warehouse(stack: Stack) -> str:
    warehouse_id = uid("WH")
    with stack.client("wms", "wms:write") as wms:
        response = wms.post(
            "/wms/v1/warehouses",
            json={"warehouse_id": warehouse_id, "name": f"Warehouse {warehouse_id}"},
            headers={"Idempotency-Key": uid("wh")},
        )
    assert response.status_code == 201, response.text
    return warehouse_id


def atp(stack: Stack, sku: str) -> int:
    with stack.client("availability", "inventory:read") as availability:
        response = availability.get(f"/availability/v1/items/{sku}")
    assert response.status_code == 200, response.text
    value: int = response.json()["available_to_promise"]
    return value


def allocated(stack: Stack, sku: str) -> int:
    with stack.client("availability", "inventory:read") as availability:
        response = availability.get(f"/availability/v1/items/{sku}")
    assert response.status_code == 200, response.text
    return sum(location["allocated"] for location in response.json()["locations"])


def receive(stack: Stack, warehouse_id: str, sku: str, quantity: int) -> None:
    """Physical stock in the WMS, then wait until availability has projected it."""
    before = atp(stack, sku)
    with stack.client("wms", "wms:write") as wms:
        response = wms.post(
            "/wms/v1/receipts",
            json={"warehouse_id": warehouse_id, "lines": [{"sku": sku, "quantity": quantity}]},
            headers={"Idempotency-Key": uid("rcpt")},
        )
    assert response.status_code == 201, response.text
    wait_until(lambda: atp(stack, sku) >= before + quantity, what=f"ATP of {sku}")


def fulfillment_orders(stack: Stack, order_id: str) -> list[dict[str, object]]:
    with stack.client("wms", "wms:read") as wms:
        response = wms.get("/wms/v1/fulfillment-orders", params={"order_id": order_id})
    assert response.status_code == 200, response.text
    items: list[dict[str, object]] = response.json()["items"]
    return items


def shipment_event(
    order_id: str,
    lines: Sequence[tuple[str, int]],
    *,
    fulfillment_order_id: str = "FO-test",
    warehouse_id: str = "WH-test",
    shipment_id: str | None = None,
) -> Event:
    # As the WMS numbers it: an event of the warehouse's stock. order_to_ship and
    # billing consume it unordered, so its sequence is not checked here.
    return shipment_dispatched(
        order_id,
        warehouse_id,
        lines,
        fulfillment_order_id=fulfillment_order_id,
        shipment_id=shipment_id or uid("SHP"),
        tracking_number=uid("1Z"),
        sequence=1,
    )


def dispatch(
    stack: Stack,
    order_id: str,
    lines: Sequence[tuple[str, int]],
    *,
    fulfillment_order_id: str = "FO-test",
    warehouse_id: str = "WH-test",
) -> Event:
    """Publishes a ``shipment.dispatched`` on the bus, as the WMS's relay would."""
    event = shipment_event(
        order_id, lines, fulfillment_order_id=fulfillment_order_id, warehouse_id=warehouse_id
    )
    stack.publish(STREAM_WMS, [event])
    return event


def redelivered(event: Event) -> Event:
    """The same fact under a new event id (a producer that published it again)."""
    return msgspec.structs.replace(event, id=str(uuid.uuid4()))


def seed_released_order(
    stack: Stack,
    customer_id: str,
    lines: Sequence[tuple[str, int, int]],
    *,
    currency: str = "USD",
    warehouse_id: str = "WH-test",
    fulfillment_order_id: str = "FO-test",
    released: bool = True,
) -> str:
    """Writes a ``released`` order directly into the orders database (test back door).
    With ``released=False`` the units are allocated and the release is not recorded yet
    (as while the releaser waits for the WMS's answer); ``record_release`` records it."""
    from datetime import UTC, datetime

    from sqlalchemy import insert

    from process_apis.order_to_ship.db import metadata, order_releases
    from process_apis.order_to_ship.orders import repository as repo
    from shared.db import Database

    order_id = uid("ORD")

    async def run() -> None:
        db = Database(stack.settings("order_to_ship").database_url, metadata)
        try:
            async with db.transaction() as tx:
                await repo.insert_pending(
                    tx.conn,
                    repo.NewOrder(
                        order_id=order_id,
                        customer_id=customer_id,
                        channel="b2b_portal",
                        policy="reject",
                        currency=currency,
                        lines=list(lines),
                        client_id="seed",
                        idempotency_key=order_id,
                    ),
                )
                working = await repo.lock(tx, order_id)
                assert working is not None
                for sku, quantity, _ in lines:
                    working.line(sku).plan(quantity, 0)
                    if released:
                        working.line(sku).release(quantity)
                if not released:
                    await repo.save(tx.conn, working, "accepted", "seeded")
                    return
                await repo.save(tx.conn, working, "released", "seeded")
                await tx.conn.execute(
                    insert(order_releases).values(
                        release_id=f"{order_id}:1",
                        order_id=order_id,
                        warehouse_id=warehouse_id,
                        lines=[{"sku": sku, "quantity": q} for sku, q, _ in lines],
                        status="sent",
                        attempts=1,
                        fulfillment_order_id=fulfillment_order_id,
                        created_at=datetime.now(UTC),
                        sent_at=datetime.now(UTC),
                    )
                )
        finally:
            await db.dispose()

    asyncio.run(run())
    return order_id


async def write_placed_order(
    db: Any, lines: Sequence[tuple[str, int]], *, released: bool, price: int = 100
) -> str:
    """Writes an order straight into the orders database ``db`` (test back door), its
    lines allocated and, with ``released``, released: ``released`` or ``accepted``."""
    from process_apis.order_to_ship.orders import repository as repo

    order_id = uid("ORD")
    async with db.transaction() as tx:
        await repo.insert_pending(
            tx.conn,
            repo.NewOrder(
                order_id=order_id,
                customer_id="CUST-1",
                channel="b2b_portal",
                policy="reject",
                currency="USD",
                lines=[(sku, quantity, price) for sku, quantity in lines],
                client_id="seed",
                idempotency_key=order_id,
            ),
        )
        working = await repo.lock(tx, order_id)
        assert working is not None
        for sku, quantity in lines:
            working.line(sku).plan(quantity, 0)
            if released:
                working.line(sku).release(quantity)
        await repo.save(tx.conn, working, "released" if released else "accepted", "seeded")
    return order_id


def record_release(stack: Stack, order_id: str) -> None:
    """Records the release of every allocated unit of a seeded order (test back door)."""
    from process_apis.order_to_ship.db import metadata
    from process_apis.order_to_ship.orders import repository as repo
    from shared.db import Database

    async def run() -> None:
        db = Database(stack.settings("order_to_ship").database_url, metadata)
        try:
            async with db.transaction() as tx:
                working = await repo.lock(tx, order_id)
                assert working is not None
                for sku in list(working.lines):
                    line = working.line(sku)  # marks it changed, so save writes it
                    line.release(line.unreleased)
                await repo.save(tx.conn, working, "released", "seeded")
        finally:
            await db.dispose()

    asyncio.run(run())


# -- orders API --------------------------------------------------------------


def place(stack: Stack, body: dict[str, Any], key: str | None = None, **client: Any) -> Any:
    headers = {"Idempotency-Key": key or uid("key")}
    with stack.client("order_to_ship", "orders:write orders:read", **client) as orders:
        return orders.post("/orders/v1/orders", json=body, headers=headers)


def orders_of(stack: Stack, customer_id: str) -> list[dict[str, Any]]:
    with stack.client("order_to_ship", "orders:read") as orders:
        response = orders.get("/orders/v1/orders", params={"customer_id": customer_id})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def body(customer_id: str, *lines: tuple[str, int], policy: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "customer_id": customer_id,
        "channel": "b2b_portal",
        "lines": [{"sku": sku, "quantity": quantity} for sku, quantity in lines],
    }
    if policy:
        data["policy"] = policy
    return data


def stocked_item(stack: Stack, warehouse: str, quantity: int, *, price: int = 1250) -> str:
    sku = new_item(stack, price=price)
    receive(stack, warehouse, sku, quantity)
    return sku


def ship(stack: Stack, fo: dict[str, Any], lines: list[tuple[str, int]]) -> dict[str, Any]:
    with stack.client("wms", "wms:write") as wms:
        response = wms.post(
            f"/wms/v1/fulfillment-orders/{fo['fulfillment_order_id']}/shipments",
            json={
                "carrier": "UPS",
                "tracking_number": uid("1Z"),
                "lines": [{"sku": sku, "quantity": quantity} for sku, quantity in lines],
            },
            headers={"Idempotency-Key": uid("ship")},
        )
    assert response.status_code == 201, response.text
    shipment: dict[str, Any] = response.json()
    return shipment


def events_of(stack: Stack, stream: str, subject: str) -> list[Event]:
    """What the relays have published on ``stream`` about ``subject``, in order."""
    from shared.events.sqlite_log import SqliteEventLog

    async def read() -> list[Event]:
        log = SqliteEventLog(stack.bus_path())
        try:
            entries = await log.read_all(stream, None, 100_000)
        finally:
            await log.close()
        return [event for _, _, event in entries if event.subject == subject]

    return asyncio.run(read())


def order_of(stack: Stack, order_id: str) -> dict[str, Any]:
    with stack.client("order_to_ship", "orders:read") as orders:
        response = orders.get(f"/orders/v1/orders/{order_id}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def settled(stack: Stack, order_id: str, *, status: str | None = None) -> dict[str, Any]:
    """The order once the releaser sent what was queued (and, given, in ``status``)."""
    seen: dict[str, Any] = {}

    def done() -> bool:
        seen.update(order_of(stack, order_id))
        return seen["releases_pending"] == 0 and status in (None, seen["status"])

    wait_until(done, what=f"order {order_id} settled ({status or 'released'}): {seen}")
    return seen


def history_of(stack: Stack, order_id: str) -> list[dict[str, Any]]:
    with stack.client("order_to_ship", "orders:read") as orders:
        response = orders.get(f"/orders/v1/orders/{order_id}/history")
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


# -- the order's commands, the warehouse's facts, and what to read back ------------------


def command(
    stack: Stack,
    order_id: str,
    action: str,
    *,
    scopes: str = "orders:write orders:read",
    json: Any = None,
    key: str | None = None,
    customer_id: str | None = None,
) -> Any:
    """POST /orders/v1/orders/{order_id}/{action} (cancel, release-hold, reject, ...)."""
    headers = {"Idempotency-Key": key} if key else {}
    with stack.client("order_to_ship", scopes, customer_id=customer_id) as orders:
        return orders.post(f"/orders/v1/orders/{order_id}/{action}", json=json, headers=headers)


def wms_post(stack: Stack, path: str, payload: dict[str, Any], *, status: int = 201) -> Any:
    """A write of the warehouse (its own Idempotency-Key); asserts the answer's status."""
    with stack.client("wms", "wms:write") as wms:
        response = wms.post(path, json=payload, headers={"Idempotency-Key": uid("wms")})
    assert response.status_code == status, response.text
    return response.json()


def pick(stack: Stack, fo: dict[str, Any], lines: list[tuple[str, int]]) -> Any:
    return wms_post(
        stack,
        f"/wms/v1/fulfillment-orders/{fo['fulfillment_order_id']}/picks",
        {"lines": [{"sku": sku, "quantity": q} for sku, q in lines]},
    )


def wms_stock(stack: Stack, warehouse_id: str, sku: str) -> dict[str, int]:
    """The WMS's physical stock of ``sku`` at the warehouse, summed over lots."""
    with stack.client("wms", "wms:read") as wms:
        response = wms.get("/wms/v1/stock", params={"sku": sku, "warehouse_id": warehouse_id})
    assert response.status_code == 200, response.text
    totals: dict[str, int] = {}
    for row in response.json()["items"]:
        for name in ("on_hand", "available", "picked", "hold"):
            totals[name] = totals.get(name, 0) + int(row[name])
    return totals


def allocation_of(stack: Stack, order_id: str) -> dict[str, Any]:
    with stack.client("availability", "inventory:read") as availability:
        response = availability.get(f"/availability/v1/allocations/{order_id}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def wait_order(stack: Stack, order_id: str, check: Any, what: str = "") -> dict[str, Any]:
    """The order once ``check(order)`` holds (and no release is still queued)."""
    seen: dict[str, Any] = {}

    def done() -> bool:
        seen.clear()
        seen.update(order_of(stack, order_id))
        return seen["releases_pending"] == 0 and bool(check(seen))

    wait_until(done, what=f"order {order_id} {what}: {seen}")
    return seen


def filled_and_released(stack: Stack, order_id: str, sku: str) -> dict[str, Any]:
    """The order once its backorder of ``sku`` filled and went to a second fulfillment
    order (the first took what was in stock when it was placed)."""
    return wait_order(
        stack,
        order_id,
        lambda o: line_of(o, sku)["backordered"] == 0 and len(o["fulfillment_orders"]) == 2,
        "backorder filled and released",
    )


def line_of(order: dict[str, Any], sku: str) -> dict[str, Any]:
    (line,) = [line for line in order["lines"] if line["sku"] == sku]
    found: dict[str, Any] = line
    return found


def path_of(stack: Stack, order_id: str) -> list[str]:
    """The statuses the order went through, from its history."""
    return [change["to"] for change in history_of(stack, order_id)]


def receipt(stack: Stack, warehouse_id: str, sku: str, quantity: int) -> None:
    """Physical stock in the WMS, without waiting on ATP (a backorder may take it first)."""
    wms_post(
        stack,
        "/wms/v1/receipts",
        {"warehouse_id": warehouse_id, "lines": [{"sku": sku, "quantity": quantity}]},
    )


def fulfillments(stack: Stack, order_id: str) -> list[dict[str, Any]]:
    """The WMS's fulfillment orders of the order (typed for reading their lines)."""
    return [dict(fo) for fo in fulfillment_orders(stack, order_id)]


@contextmanager
def stopped(stack: Stack, name: str) -> Iterator[None]:
    """The service ``name`` stopped inside the block, started again after it (its
    consumers resume from their group's position)."""
    from tests.support.stack import ThreadServer

    stack.servers.pop(name).stop()
    try:
        yield
    finally:
        server = ThreadServer(stack.app(name), stack.ports[name])
        server.start()
        stack.servers[name] = server
        _wait_out_open_circuits(stack, name)


def _wait_out_open_circuits(stack: Stack, name: str) -> None:
    """A caller that met the stopped service five times in a row (its own calls and its
    background jobs') opened its circuit to it: its calls are refused at once for the
    cool-down. The service is back; the test goes on once a call would reach it, as a
    client waits out ``Retry-After``, and the next test does not inherit the outage."""
    response = httpx.get(f"{stack.urls[name]}/metrics", timeout=10)
    opened = [
        line
        for line in response.text.splitlines()
        if line.startswith("tally_circuit_state{")
        and f'downstream="{name}"' in line
        and float(line.rsplit(" ", 1)[1]) == 2.0
    ]
    if opened:
        time.sleep(stack.settings("order_to_ship").breaker_cooldown_seconds + 0.1)


def deliver(stack: Stack, shipment_id: str) -> Any:
    return wms_post(stack, f"/wms/v1/shipments/{shipment_id}/delivery", {}, status=200)


def calls_answered(
    stack: Stack, service: str, method: str, routes: Sequence[str]
) -> dict[str, float]:
    """Per route, the ``method`` requests ``service`` answered
    (``tally_http_request_seconds_count`` in its /metrics; the stack's services share
    one process, so these count every caller's)."""
    response = httpx.get(f"{stack.urls[service]}/metrics", timeout=10)
    assert response.status_code == 200, response.text
    calls = dict.fromkeys(routes, 0.0)
    for line in response.text.splitlines():
        if not line.startswith("tally_http_request_seconds_count{"):
            continue
        if f'method="{method}"' not in line:
            continue
        for route in routes:
            if f'route="{route}"' in line or f'route="{route}/"' in line:
                calls[route] += float(line.rsplit(" ", 1)[1])
    return calls
