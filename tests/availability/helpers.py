"""Helpers of the availability tests: WMS facts on the bus, ledger checks."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import uuid_utils
from litestar.testing import TestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from process_apis.availability.positions import ledger
from shared.events.catalog import ReceiptPosted, ShipmentDispatched
from shared.events.envelope import Event
from shared.events.sqlite_log import SqliteEventLog
from shared.settings import Settings
from tests.support.events import receipt_posted
from tests.support.polling import eventually


def _log_path(settings: Settings) -> str:
    return settings.bus_url.removeprefix("sqlite:///")


# What the WMS would number: per bus and warehouse, the stock version each receipt or
# shipment got (one per fact, so a re-emission under a new event id carries the same).
_stock_versions: dict[tuple[str, str], int] = {}
_fact_versions: dict[tuple[str, str, str], int] = {}


def _as_the_wms_numbers_it(settings: Settings, event: Event) -> Event:
    """Stock events leave the helpers unnumbered (sequence 0); publishing gives each
    the next stock version of its warehouse, as the WMS does in its transaction."""
    if event.type not in ("receipt.posted", "shipment.dispatched") or event.sequence:
        return event
    fact = (
        event.payload(ReceiptPosted).receipt_id
        if event.type == "receipt.posted"
        else event.payload(ShipmentDispatched).shipment_id
    )
    key = (settings.bus_url, event.type, fact)
    if key not in _fact_versions:
        warehouse = (settings.bus_url, event.subject)
        _stock_versions[warehouse] = _stock_versions.get(warehouse, 0) + 1
        _fact_versions[key] = _stock_versions[warehouse]
    return msgspec.structs.replace(event, sequence=_fact_versions[key])


def numbered(settings: Settings, *events: Event) -> list[Event]:
    """The events as the WMS would publish them (in this order of stock changes)."""
    return [_as_the_wms_numbers_it(settings, e) for e in events]


def publish(settings: Settings, *events: Event, stream: str = "tally.wms") -> None:
    async def run() -> None:
        log = SqliteEventLog(_log_path(settings))
        try:
            await log.publish(stream, [_as_the_wms_numbers_it(settings, e) for e in events])
        finally:
            await log.close()

    asyncio.run(run())


def item(client: TestClient[Any], sku: str) -> dict[str, Any]:
    response = client.get(f"/availability/v1/items/{sku}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def by_location(client: TestClient[Any], sku: str) -> dict[str, tuple[int, int]]:
    """location -> (on_hand, allocated)."""
    return {
        loc["location_id"]: (loc["on_hand"], loc["allocated"])
        for loc in item(client, sku)["locations"]
    }


def movements(client: TestClient[Any], sku: str) -> list[dict[str, Any]]:
    response = client.get(f"/availability/v1/items/{sku}/movements", params={"limit": 500})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def apply_and_wait(client: TestClient[Any], settings: Settings, *events: Event) -> None:
    """Publishes the events, then a marker receipt, and waits for the marker: the
    consumer reads the stream in order, so everything before it has been handled."""
    marker = receipt_posted("MARKER", [("MARKER", 1, None)])
    before = item(client, "MARKER")["available_to_promise"]
    publish(settings, *events, marker)
    applied = eventually(lambda: item(client, "MARKER")["available_to_promise"] > before)
    assert applied, "the consumer did not apply the events"


def stock(client: TestClient[Any], settings: Settings, warehouse_id: str, **skus: int) -> None:
    apply_and_wait(
        client, settings, receipt_posted(warehouse_id, [(s, q, None) for s, q in skus.items()])
    )


def outbox_count(settings: Settings) -> int:
    """Rows in the service's outbox, on whichever database it runs."""

    async def run() -> int:
        engine = create_async_engine(settings.database_url)
        try:
            async with engine.connect() as conn:
                return int(await conn.scalar(text("SELECT count(*) FROM outbox")) or 0)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def ledger_drift(settings: Settings) -> dict[Any, Any]:
    """Positions that differ from the ledger's rebuild (empty when they agree)."""

    async def run() -> dict[Any, Any]:
        engine = create_async_engine(settings.database_url)
        try:
            async with engine.connect() as conn:
                assert await ledger.snapshot(conn), "no positions to compare"
                return await ledger.drift(conn)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def allocate(
    client: TestClient[Any],
    order_id: str,
    lines: list[tuple[str, int]],
    *,
    policy: str | None = None,
    key: str | None = None,
) -> Any:
    body: dict[str, Any] = {
        "order_id": order_id,
        "channel": "b2b",
        "lines": [{"sku": sku, "quantity": q} for sku, q in lines],
    }
    if policy:
        body["policy"] = policy
    return client.post(
        "/availability/v1/allocations",
        json=body,
        headers={"Idempotency-Key": key or f"alloc-{order_id}"},
    )


def count(
    client: TestClient[Any],
    sku: str,
    location_id: str,
    counted: int,
    *,
    expected: int = 0,
    lot: str | None = None,
) -> Any:
    """A cycle count (compare-and-set): the quickest way for a test to put stock."""
    body: dict[str, Any] = {
        "location_id": location_id,
        "expected_on_hand": expected,
        "counted_on_hand": counted,
        "reference": f"CC-{sku}-{location_id}",
    }
    if lot:
        body["lot"] = lot
    response = client.post(f"/availability/v1/positions/{sku}/counts", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def hold(
    client: TestClient[Any],
    lines: list[tuple[str, int]],
    *,
    channel: str = "web",
    key: str | None = None,
    **extra: Any,
) -> Any:
    body: dict[str, Any] = {
        "channel": channel,
        "lines": [{"sku": sku, "quantity": q} for sku, q in lines],
        **extra,
    }
    if "expires_at" not in body and "ttl_seconds" not in body:
        body["ttl_seconds"] = 600
    return client.post(
        "/availability/v1/holds",
        json=body,
        headers={"Idempotency-Key": key or f"hold-{uuid_utils.uuid7()}"},
    )


def order(
    client: TestClient[Any],
    order_id: str,
    lines: list[tuple[str, int]],
    *,
    channel: str = "b2b",
    policy: str = "reject",
    **extra: Any,
) -> Any:
    body: dict[str, Any] = {
        "order_id": order_id,
        "channel": channel,
        "policy": policy,
        "lines": [{"sku": sku, "quantity": q} for sku, q in lines],
        **extra,
    }
    return client.post(
        "/availability/v1/allocations", json=body, headers={"Idempotency-Key": f"alloc-{order_id}"}
    )


def assert_never_oversold(client: TestClient[Any], settings: Settings) -> int:
    """Sku A: no location allocates more than it holds, the ledger rebuilds the
    positions; the units allocated in all."""
    locations = by_location(client, "A")
    for on_hand, allocated in locations.values():
        assert 0 <= allocated <= on_hand
    assert ledger_drift(settings) == {}
    return sum(allocated for _, allocated in locations.values())
