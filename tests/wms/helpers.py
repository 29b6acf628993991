"""Helpers of the WMS tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from litestar.testing import TestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from shared.events.envelope import Event
from shared.events.sqlite_log import SqliteEventLog
from shared.settings import Settings


def bus_events(settings: Settings) -> list[Event]:
    async def read() -> list[Event]:
        log = SqliteEventLog(settings.bus_url.removeprefix("sqlite:///"))
        try:
            return [event for _, _, event in await log.read_all(limit=1000)]
        finally:
            await log.close()

    return asyncio.run(read())


def wait_for(probe: Callable[[], Any], timeout: float = 5.0) -> Any:
    """Polls until ``probe`` returns something truthy; returns the last answer."""
    deadline = time.monotonic() + timeout
    while True:
        answer = probe()
        if answer or time.monotonic() > deadline:
            return answer
        time.sleep(0.02)


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
