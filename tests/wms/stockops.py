"""Helpers of the WMS tests of picks, adjustments, counts and returns."""

from __future__ import annotations

from typing import Any

from litestar.testing import TestClient

from shared.settings import Settings
from tests.wms.helpers import bus_events, wait_for


def post(client: TestClient[Any], path: str, body: dict[str, Any], *, key: str) -> Any:
    return client.post(path, json=body, headers={"Idempotency-Key": key})


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
    found = wait_for(
        lambda: [e for e in bus_events(settings) if e.type == type_][count - 1 : count] and True
    )
    assert found, f"{count} {type_} events never reached the bus"
    return [e for e in bus_events(settings) if e.type == type_]


def stock_sequences(settings: Settings, warehouse_id: str = "WH1") -> list[int]:
    subject = f"warehouse:{warehouse_id}"
    return sorted(e.sequence for e in bus_events(settings) if e.subject == subject)
