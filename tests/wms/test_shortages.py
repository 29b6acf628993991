"""Shortages (short picks): the warehouse cannot find units of a fulfillment order. Its
lines shrink, the sku's free stock moves to hold until counted (inventory.adjusted,
reason short_pick) and pick.shorted follows, in one transaction."""

from __future__ import annotations

from typing import Any

from litestar.testing import TestClient

from shared.events.catalog import InventoryAdjusted, PickShorted
from shared.settings import Settings
from tests.support.events import bus_events
from tests.support.problems import assert_problem
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


def short(client: TestClient[Any], fo_id: str, lines: list[dict[str, Any]], *, key: str) -> Any:
    return post(client, f"/wms/v1/fulfillment-orders/{fo_id}/shortages", {"lines": lines}, key=key)


def test_a_shortage_shrinks_the_line_and_holds_the_free_stock(
    client: TestClient[Any], settings: Settings
) -> None:
    add_warehouse(client)
    receive(
        client,
        [{"sku": "A", "quantity": 2, "lot": "L1"}, {"sku": "A", "quantity": 3, "lot": "L2"}],
        key="rcv",
    )
    fo_id = release(client, [{"sku": "A", "quantity": 4}], key="fo")["fulfillment_order_id"]

    reported = short(client, fo_id, [{"sku": "A", "quantity": 3}], key="x1")
    assert reported.status_code == 201, reported.text
    body = reported.json()
    assert body["shortage_id"].startswith("SHT-")
    assert (body["fulfillment_order_id"], body["order_id"], body["warehouse_id"]) == (
        fo_id,
        "SO-1",
        "WH1",
    )
    assert body["lines"] == [{"sku": "A", "quantity": 3}]
    assert body["held"] == [
        {"sku": "A", "quantity": 2, "lot": "L1"},
        {"sku": "A", "quantity": 1, "lot": "L2"},
    ]
    order = client.get(f"/wms/v1/fulfillment-orders/{fo_id}").json()
    assert order["status"] == "released"
    assert order["lines"] == [{"sku": "A", "quantity": 1, "shipped": 0, "picked": 0}]
    rows = stock_rows(client, "A")
    assert (rows[("WH1", "L1")]["hold"], rows[("WH1", "L1")]["available"]) == (2, 0)
    assert (rows[("WH1", "L2")]["hold"], rows[("WH1", "L2")]["available"]) == (1, 2)
    assert rows[("WH1", "L1")]["on_hand"] == 2  # held until counted, not written off

    (shorted,) = events_of(settings, "pick.shorted", 1)
    payload = shorted.payload(PickShorted)
    assert (payload.shortage_id, payload.fulfillment_order_id, payload.order_id) == (
        body["shortage_id"],
        fo_id,
        "SO-1",
    )
    assert [(x.sku, x.quantity) for x in payload.lines] == [("A", 3)]
    (adjusted,) = events_of(settings, "inventory.adjusted", 1)
    adjustment = adjusted.payload(InventoryAdjusted)
    assert adjustment.reason == "short_pick"
    assert adjustment.adjustment_id == body["adjustment_id"]
    assert [(x.sku, x.quantity_delta, x.status, x.lot) for x in adjustment.lines] == [
        ("A", -2, "available", "L1"),
        ("A", 2, "hold", "L1"),
        ("A", -1, "available", "L2"),
        ("A", 1, "hold", "L2"),
    ]
    # Both are stock facts of the warehouse: the hold first, then the shortage.
    assert (adjusted.subject, adjusted.sequence) == ("warehouse:WH1", 2)
    assert (shorted.subject, shorted.sequence) == ("warehouse:WH1", 3)
    assert stock_sequences(settings) == [1, 2, 3]

    # The last unit shorted as well: nothing left, nothing shipped, so cancelled.
    last = short(client, fo_id, [{"sku": "A", "quantity": 1}], key="x2")
    assert last.status_code == 201, last.text
    assert client.get(f"/wms/v1/fulfillment-orders/{fo_id}").json()["status"] == "cancelled"


def test_a_shortage_with_no_free_stock_holds_nothing(
    client: TestClient[Any], settings: Settings
) -> None:
    add_warehouse(client)
    receive(client, [{"sku": "A", "quantity": 2}], key="rcv")
    fo_id = release(client, [{"sku": "A", "quantity": 5}], key="fo")["fulfillment_order_id"]
    assert (
        post(
            client,
            f"/wms/v1/fulfillment-orders/{fo_id}/picks",
            {"lines": [{"sku": "A", "quantity": 2}]},
            key="p1",
        ).status_code
        == 201
    )

    reported = short(client, fo_id, [{"sku": "A", "quantity": 3}], key="x1")
    assert reported.status_code == 201, reported.text
    assert (reported.json()["held"], reported.json()["adjustment_id"]) == ([], None)
    (shorted,) = events_of(settings, "pick.shorted", 1)
    assert shorted.sequence == 3  # receipt 1, pick 2: one version, no adjustment
    assert "inventory.adjusted" not in [e.type for e in bus_events(settings)]
    assert stock_rows(client, "A")[("WH1", None)]["hold"] == 0


def test_more_than_open_and_unpicked_is_409_and_changes_nothing(
    client: TestClient[Any], settings: Settings
) -> None:
    add_warehouse(client)
    receive(client, [{"sku": "A", "quantity": 10}], key="rcv")
    fo_id = release(client, [{"sku": "A", "quantity": 5}], key="fo")["fulfillment_order_id"]
    assert (
        post(
            client,
            f"/wms/v1/fulfillment-orders/{fo_id}/picks",
            {"lines": [{"sku": "A", "quantity": 2}]},
            key="p1",
        ).status_code
        == 201
    )
    before = (
        stock_rows(client, "A"),
        client.get(f"/wms/v1/fulfillment-orders/{fo_id}").json(),
        outbox_count(settings),
    )

    too_many = short(client, fo_id, [{"sku": "A", "quantity": 4}], key="x1")
    assert assert_problem(too_many, 409, "quantity-not-open")["open_quantity"] == 3
    assert_problem(
        short(client, fo_id, [{"sku": "B", "quantity": 1}], key="x2"), 422, "unknown-line"
    )
    assert_problem(short(client, "FO-nope", [{"sku": "A", "quantity": 1}], key="x3"), 404)
    after = (
        stock_rows(client, "A"),
        client.get(f"/wms/v1/fulfillment-orders/{fo_id}").json(),
        outbox_count(settings),
    )
    assert after == before
    assert stock_sequences(settings) == [1, 2]  # no version spent on a refusal
    no_key = client.post(
        f"/wms/v1/fulfillment-orders/{fo_id}/shortages",
        json={"lines": [{"sku": "A", "quantity": 1}]},
    )
    assert no_key.status_code == 400


def test_a_shortage_replayed_is_reported_once(client: TestClient[Any], settings: Settings) -> None:
    add_warehouse(client)
    receive(client, [{"sku": "A", "quantity": 10}], key="rcv")
    fo_id = release(client, [{"sku": "A", "quantity": 5}], key="fo")["fulfillment_order_id"]
    first = short(client, fo_id, [{"sku": "A", "quantity": 2}], key="x1")
    outbox_after_first = outbox_count(settings)
    again = short(client, fo_id, [{"sku": "A", "quantity": 2}], key="x1")
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert outbox_count(settings) == outbox_after_first
    assert stock_rows(client, "A")[("WH1", None)]["hold"] == 2
    assert client.get(f"/wms/v1/fulfillment-orders/{fo_id}").json()["lines"][0]["quantity"] == 3
    assert_problem(short(client, fo_id, [{"sku": "A", "quantity": 1}], key="x1"), 422)
