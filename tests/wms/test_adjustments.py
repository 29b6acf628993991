from __future__ import annotations

from typing import Any

from litestar.testing import TestClient

from shared.events.catalog import InventoryAdjusted
from shared.settings import Settings
from tests.support.service import post
from tests.wms.helpers import (
    add_warehouse,
    events_of,
    outbox_count,
    receive,
    stock_rows,
    stock_sequences,
)


def adjust(client: TestClient[Any], reason: str, lines: list[dict[str, Any]], *, key: str) -> Any:
    body = {"warehouse_id": "WH1", "reason": reason, "lines": lines}
    return post(client, "/wms/v1/adjustments", body, key=key)


def test_quality_status_change_moves_stock_between_statuses(
    client: TestClient[Any], settings: Settings
) -> None:
    add_warehouse(client)
    receive(client, [{"sku": "A", "quantity": 10, "lot": "L1"}], key="rcv")

    to_hold = adjust(
        client,
        "quality_status",
        [
            {"sku": "A", "lot": "L1", "quantity_delta": -4, "status": "available"},
            {"sku": "A", "lot": "L1", "quantity_delta": 3, "status": "hold"},
            {"sku": "A", "lot": "L1", "quantity_delta": 1, "status": "quality_control"},
        ],
        key="a1",
    )
    assert to_hold.status_code == 201, to_hold.text
    damage = adjust(
        client,
        "damage",
        [
            {"sku": "A", "lot": "L1", "quantity_delta": 2, "status": "damaged"},
            {"sku": "A", "lot": "L1", "quantity_delta": -2},
        ],
        key="a2",
    )
    assert damage.status_code == 201, damage.text
    lost = adjust(client, "lost", [{"sku": "A", "lot": "L1", "quantity_delta": -1}], key="a3")
    assert lost.status_code == 201, lost.text

    assert stock_rows(client, "A")[("WH1", "L1")] == {
        "on_hand": 9,
        "quality_control": 1,
        "damaged": 2,
        "hold": 3,
        "picked": 0,
        "available": 3,
    }
    events = events_of(settings, "inventory.adjusted", 3)
    first = events[0].payload(InventoryAdjusted)
    assert first.reason == "quality_status"
    assert [(x.status, x.quantity_delta, x.lot) for x in first.lines] == [
        ("available", -4, "L1"),
        ("hold", 3, "L1"),
        ("quality_control", 1, "L1"),
    ]
    assert stock_sequences(settings) == [1, 2, 3, 4]


def test_an_adjustment_below_what_is_held_is_refused_whole(
    client: TestClient[Any], settings: Settings
) -> None:
    add_warehouse(client)
    receive(client, [{"sku": "A", "quantity": 5}, {"sku": "B", "quantity": 5}], key="rcv")
    assert (
        adjust(
            client,
            "quality_status",
            [
                {"sku": "A", "quantity_delta": -5},
                {"sku": "A", "quantity_delta": 5, "status": "hold"},
            ],
            key="a1",
        ).status_code
        == 201
    )
    before = (stock_rows(client, "A"), stock_rows(client, "B"), outbox_count(settings))

    # B would be fine, A has nothing available to lose: nothing changes.
    refused = adjust(
        client,
        "lost",
        [{"sku": "B", "quantity_delta": -1}, {"sku": "A", "quantity_delta": -1}],
        key="a2",
    )
    assert refused.status_code == 409
    assert refused.json()["type"] == "/problems/insufficient-stock"
    more_hold_than_held = adjust(
        client, "correction", [{"sku": "A", "quantity_delta": -6, "status": "hold"}], key="a3"
    )
    assert more_hold_than_held.status_code == 409
    assert (stock_rows(client, "A"), stock_rows(client, "B"), outbox_count(settings)) == before
    assert stock_sequences(settings) == [1, 2]


def test_adjustment_input_is_checked(client: TestClient[Any]) -> None:
    add_warehouse(client)
    zero = adjust(client, "found", [{"sku": "A", "quantity_delta": 0}], key="z")
    assert zero.status_code == 422
    bad_status = adjust(
        client, "found", [{"sku": "A", "quantity_delta": 1, "status": "x"}], key="b"
    )
    assert bad_status.status_code == 400
    bad_reason = adjust(client, "because", [{"sku": "A", "quantity_delta": 1}], key="r")
    assert bad_reason.status_code == 400
    unknown = post(
        client,
        "/wms/v1/adjustments",
        {"warehouse_id": "NOPE", "reason": "found", "lines": [{"sku": "A", "quantity_delta": 1}]},
        key="u",
    )
    assert unknown.status_code == 422
    assert unknown.json()["type"] == "/problems/unknown-warehouse"
    found = adjust(client, "found", [{"sku": "A", "quantity_delta": 2}], key="f")
    replay = adjust(client, "found", [{"sku": "A", "quantity_delta": 2}], key="f")
    assert found.status_code == 201 and replay.headers["Idempotent-Replayed"] == "true"
    assert stock_rows(client, "A")[("WH1", None)]["on_hand"] == 2
