from __future__ import annotations

from typing import Any

from litestar.testing import TestClient

from shared.events.catalog import InventoryAdjusted
from shared.settings import Settings
from tests.support.events import bus_events
from tests.support.service import post
from tests.wms.helpers import (
    add_warehouse,
    events_of,
    outbox_count,
    receive,
    stock_rows,
    stock_sequences,
)


def count(
    client: TestClient[Any], expected: int, counted: int, *, key: str, lot: str | None = "L1"
) -> Any:
    body: dict[str, Any] = {
        "warehouse_id": "WH1",
        "sku": "A",
        "expected_quantity": expected,
        "counted_quantity": counted,
    }
    if lot:
        body["lot"] = lot
    return post(client, "/wms/v1/cycle-counts", body, key=key)


def test_a_count_replaces_the_expected_quantity(
    client: TestClient[Any], settings: Settings
) -> None:
    add_warehouse(client)
    receive(client, [{"sku": "A", "quantity": 10, "lot": "L1"}], key="rcv")

    counted = count(client, 10, 8, key="c1")
    assert counted.status_code == 201, counted.text
    body = counted.json()
    assert (body["quantity_delta"], body["lot"]) == (-2, "L1")
    assert body["adjustment_id"].startswith("ADJ-")
    assert stock_rows(client, "A")[("WH1", "L1")]["on_hand"] == 8
    (event,) = events_of(settings, "inventory.adjusted", 1)
    adjusted = event.payload(InventoryAdjusted)
    assert adjusted.reason == "cycle_count"
    assert [(x.sku, x.quantity_delta, x.status, x.lot) for x in adjusted.lines] == [
        ("A", -2, "available", "L1")
    ]
    assert stock_sequences(settings) == [1, 2]


def test_a_stale_count_is_409_with_the_current_quantity(
    client: TestClient[Any], settings: Settings
) -> None:
    add_warehouse(client)
    receive(client, [{"sku": "A", "quantity": 10, "lot": "L1"}], key="rcv")
    outbox_before = outbox_count(settings)

    stale = count(client, 7, 5, key="c1")
    assert stale.status_code == 409
    assert stale.json()["type"] == "/problems/stale-count"
    assert stale.json()["current_quantity"] == 10
    assert stock_rows(client, "A")[("WH1", "L1")]["on_hand"] == 10
    assert outbox_count(settings) == outbox_before
    # A count of stock never seen expects 0.
    assert count(client, 1, 4, key="c2", lot="L9").json()["current_quantity"] == 0
    fresh = count(client, 0, 4, key="c3", lot="L9")
    assert fresh.status_code == 201
    assert stock_rows(client, "A")[("WH1", "L9")]["on_hand"] == 4


def test_a_matching_count_changes_nothing_and_leaves_no_gap(
    client: TestClient[Any], settings: Settings
) -> None:
    add_warehouse(client)
    receive(client, [{"sku": "A", "quantity": 10, "lot": "L1"}], key="rcv")
    same = count(client, 10, 10, key="c1")
    assert same.status_code == 201
    assert (same.json()["quantity_delta"], same.json()["adjustment_id"]) == (0, None)
    receive(client, [{"sku": "A", "quantity": 1, "lot": "L1"}], key="rcv2")
    events_of(settings, "receipt.posted", 2)
    assert [e.type for e in bus_events(settings)].count("inventory.adjusted") == 0
    assert stock_sequences(settings) == [1, 2]


def test_a_count_below_held_stock_is_refused(client: TestClient[Any]) -> None:
    add_warehouse(client)
    receive(client, [{"sku": "A", "quantity": 10, "lot": "L1"}], key="rcv")
    post(
        client,
        "/wms/v1/adjustments",
        {
            "warehouse_id": "WH1",
            "reason": "damage",
            "lines": [
                {"sku": "A", "lot": "L1", "quantity_delta": -6},
                {"sku": "A", "lot": "L1", "quantity_delta": 6, "status": "damaged"},
            ],
        },
        key="a1",
    )
    below = count(client, 10, 5, key="c1")
    assert below.status_code == 409
    assert below.json()["type"] == "/problems/insufficient-stock"
    assert stock_rows(client, "A")[("WH1", "L1")]["on_hand"] == 10
