"""Helpers of the WMS tests."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar.testing import TestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from shared.settings import Settings
from tests.support.events import bus_events
from tests.support.polling import eventually


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


def stock_of(client: TestClient[Any], sku: str) -> dict[tuple[str, str | None], int]:
    response = client.get("/wms/v1/stock", params={"sku": sku})
    assert response.status_code == 200, response.text
    return {(s["warehouse_id"], s["lot"]): s["on_hand"] for s in response.json()["items"]}


def add_warehouse(client: TestClient[Any], warehouse_id: str = "WH1") -> None:
    response = client.post(
        "/wms/v1/warehouses", json={"warehouse_id": warehouse_id, "name": "Main"}
    )
    assert response.status_code == 201, response.text


def receive(
    client: TestClient[Any], lines: list[dict[str, Any]], *, warehouse_id: str = "WH1", key: str
) -> dict[str, Any]:
    response = client.post(
        "/wms/v1/receipts",
        json={"warehouse_id": warehouse_id, "lines": lines},
        headers={"Idempotency-Key": key},
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def release(
    client: TestClient[Any], lines: list[dict[str, Any]], *, order_id: str = "SO-1", key: str
) -> dict[str, Any]:
    response = client.post(
        "/wms/v1/fulfillment-orders",
        json={"order_id": order_id, "warehouse_id": "WH1", "lines": lines},
        headers={"Idempotency-Key": key},
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def stock_rows(client: TestClient[Any], sku: str) -> dict[tuple[str, str | None], dict[str, int]]:
    """(warehouse, lot) -> the physical figures of that stock row."""
    response = client.get("/wms/v1/stock", params={"sku": sku})
    assert response.status_code == 200, response.text
    fields = ("on_hand", "quality_control", "damaged", "hold", "picked", "available")
    return {
        (s["warehouse_id"], s["lot"]): {f: s[f] for f in fields} for s in response.json()["items"]
    }


def events_of(settings: Settings, type_: str, count: int) -> list[Any]:
    """The bus's events of one type, once ``count`` of them have been relayed."""
    found = eventually(
        lambda: [e for e in bus_events(settings) if e.type == type_][count - 1 : count] and True
    )
    assert found, f"{count} {type_} events never reached the bus"
    return [e for e in bus_events(settings) if e.type == type_]


def stock_sequences(settings: Settings, warehouse_id: str = "WH1") -> list[int]:
    subject = f"warehouse:{warehouse_id}"
    return sorted(e.sequence for e in bus_events(settings) if e.subject == subject)
