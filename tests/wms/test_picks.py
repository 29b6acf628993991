from __future__ import annotations

from typing import Any

from litestar.testing import TestClient

from shared.events.catalog import PickConfirmed, ShipmentDispatched
from shared.settings import Settings
from tests.support.service import post
from tests.wms.helpers import (
    add_warehouse,
    events_of,
    outbox_count,
    receive,
    release,
    stock_rows,
    stock_sequences,
)


def pick(client: TestClient[Any], fo_id: str, lines: list[dict[str, Any]], *, key: str) -> Any:
    return post(client, f"/wms/v1/fulfillment-orders/{fo_id}/picks", {"lines": lines}, key=key)


def test_the_lot_picked_is_the_lot_shipped(client: TestClient[Any], settings: Settings) -> None:
    """Receipt (lots L1, L2) -> pick of L2 -> a shipment that names no lot ships L2."""
    add_warehouse(client)
    receive(
        client,
        [{"sku": "A", "quantity": 5, "lot": "L1"}, {"sku": "A", "quantity": 5, "lot": "L2"}],
        key="rcv",
    )
    fo_id = release(client, [{"sku": "A", "quantity": 3}], key="fo")["fulfillment_order_id"]

    picked = pick(client, fo_id, [{"sku": "A", "quantity": 3, "lot": "L2"}], key="p1")
    assert picked.status_code == 201, picked.text
    assert picked.json()["lines"] == [{"sku": "A", "quantity": 3, "lot": "L2"}]
    # Picked stock is still on hand but no longer free to pick or ship.
    assert stock_rows(client, "A")[("WH1", "L2")] == {
        "on_hand": 5,
        "quality_control": 0,
        "damaged": 0,
        "hold": 0,
        "picked": 3,
        "available": 2,
    }
    shipped = post(
        client,
        f"/wms/v1/fulfillment-orders/{fo_id}/shipments",
        {"carrier": "UPS", "tracking_number": "1Z1", "lines": [{"sku": "A", "quantity": 3}]},
        key="s1",
    )
    assert shipped.status_code == 201, shipped.text
    assert shipped.json()["lines"] == [{"sku": "A", "quantity": 3, "lot": "L2"}]
    rows = stock_rows(client, "A")
    assert (rows[("WH1", "L1")]["on_hand"], rows[("WH1", "L2")]["on_hand"]) == (5, 2)
    assert rows[("WH1", "L2")]["picked"] == 0

    (event,) = events_of(settings, "pick.confirmed", 1)
    payload = event.payload(PickConfirmed)
    assert (payload.fulfillment_order_id, payload.order_id) == (fo_id, "SO-1")
    assert [(line.sku, line.quantity, line.lot) for line in payload.lines] == [("A", 3, "L2")]
    assert event.subject == "warehouse:WH1"
    (ship_event,) = events_of(settings, "shipment.dispatched", 1)
    assert [line.lot for line in ship_event.payload(ShipmentDispatched).lines] == ["L2"]
    # receipt 1, pick 2, shipment 3: one stock sequence for the warehouse, no gap.
    assert stock_sequences(settings) == [1, 2, 3]


def test_pick_without_lot_takes_lots_in_order(client: TestClient[Any]) -> None:
    add_warehouse(client)
    receive(
        client,
        [{"sku": "A", "quantity": 2, "lot": "L1"}, {"sku": "A", "quantity": 5, "lot": "L2"}],
        key="rcv",
    )
    fo_id = release(client, [{"sku": "A", "quantity": 4}], key="fo")["fulfillment_order_id"]
    picked = pick(client, fo_id, [{"sku": "A", "quantity": 4}], key="p1")
    assert picked.status_code == 201, picked.text
    assert picked.json()["lines"] == [
        {"sku": "A", "quantity": 2, "lot": "L1"},
        {"sku": "A", "quantity": 2, "lot": "L2"},
    ]


def test_over_pick_and_short_stock_are_409_and_change_nothing(
    client: TestClient[Any], settings: Settings
) -> None:
    add_warehouse(client)
    receive(client, [{"sku": "A", "quantity": 3}], key="rcv")
    fo_id = release(client, [{"sku": "A", "quantity": 5}], key="fo")["fulfillment_order_id"]
    outbox_before = outbox_count(settings)

    more_than_ordered = pick(client, fo_id, [{"sku": "A", "quantity": 6}], key="p1")
    assert more_than_ordered.status_code == 409
    assert more_than_ordered.json()["type"] == "/problems/over-shipment"
    more_than_stock = pick(client, fo_id, [{"sku": "A", "quantity": 4}], key="p2")
    assert more_than_stock.status_code == 409
    assert more_than_stock.json()["type"] == "/problems/insufficient-stock"
    assert stock_rows(client, "A")[("WH1", None)]["picked"] == 0
    assert outbox_count(settings) == outbox_before
    assert stock_sequences(settings) == [1]
    # A pick of the order keeps the stock from another order's shipment.
    other = release(client, [{"sku": "A", "quantity": 3}], order_id="SO-2", key="fo2")
    assert pick(client, fo_id, [{"sku": "A", "quantity": 3}], key="p3").status_code == 201
    stolen = post(
        client,
        f"/wms/v1/fulfillment-orders/{other['fulfillment_order_id']}/shipments",
        {"carrier": "UPS", "tracking_number": "1Z2", "lines": [{"sku": "A", "quantity": 1}]},
        key="s-other",
    )
    assert stolen.status_code == 409
    # ...and a picked order cannot be cancelled until the stock is put away.
    cancel = client.post(f"/wms/v1/fulfillment-orders/{fo_id}/cancel")
    assert cancel.status_code == 409


def test_pick_replay_picks_once_and_unknown_order_is_404(client: TestClient[Any]) -> None:
    add_warehouse(client)
    receive(client, [{"sku": "A", "quantity": 3}], key="rcv")
    fo_id = release(client, [{"sku": "A", "quantity": 3}], key="fo")["fulfillment_order_id"]
    first = pick(client, fo_id, [{"sku": "A", "quantity": 2}], key="p1")
    again = pick(client, fo_id, [{"sku": "A", "quantity": 2}], key="p1")
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert stock_rows(client, "A")[("WH1", None)]["picked"] == 2
    missing = pick(client, "FO-nope", [{"sku": "A", "quantity": 1}], key="p2")
    assert missing.status_code == 404
    no_key = client.post(
        f"/wms/v1/fulfillment-orders/{fo_id}/picks", json={"lines": [{"sku": "A", "quantity": 1}]}
    )
    assert no_key.status_code == 400
