"""Put-aways (un-picks): picked, unshipped units of a fulfillment order go back to free
stock, newest picks first, with pick.put_away in the same transaction."""

from __future__ import annotations

from typing import Any

from litestar.testing import TestClient

from shared.events.catalog import PickPutAway
from shared.settings import Settings
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


def pick(client: TestClient[Any], fo_id: str, lines: list[dict[str, Any]], *, key: str) -> Any:
    response = post(client, f"/wms/v1/fulfillment-orders/{fo_id}/picks", {"lines": lines}, key=key)
    assert response.status_code == 201, response.text
    return response.json()


def put_away(client: TestClient[Any], fo_id: str, lines: list[dict[str, Any]], *, key: str) -> Any:
    return post(client, f"/wms/v1/fulfillment-orders/{fo_id}/put-aways", {"lines": lines}, key=key)


def line_of(client: TestClient[Any], fo_id: str, sku: str) -> dict[str, Any]:
    order = client.get(f"/wms/v1/fulfillment-orders/{fo_id}").json()
    line: dict[str, Any] = next(x for x in order["lines"] if x["sku"] == sku)
    return line


def test_put_away_frees_the_newest_picks_then_the_order_cancels(
    client: TestClient[Any], settings: Settings
) -> None:
    add_warehouse(client)
    receive(
        client,
        [{"sku": "A", "quantity": 5, "lot": "L1"}, {"sku": "A", "quantity": 5, "lot": "L2"}],
        key="rcv",
    )
    fo_id = release(client, [{"sku": "A", "quantity": 6}], key="fo")["fulfillment_order_id"]
    pick(client, fo_id, [{"sku": "A", "quantity": 2, "lot": "L1"}], key="p1")
    pick(client, fo_id, [{"sku": "A", "quantity": 2, "lot": "L2"}], key="p2")
    assert line_of(client, fo_id, "A")["picked"] == 4

    back = put_away(client, fo_id, [{"sku": "A", "quantity": 3}], key="u1")
    assert back.status_code == 201, back.text
    body = back.json()
    assert body["put_away_id"].startswith("PUT-")
    assert (body["fulfillment_order_id"], body["order_id"], body["warehouse_id"]) == (
        fo_id,
        "SO-1",
        "WH1",
    )
    # The newest pick (L2) goes back whole, then one of the older one (L1).
    assert body["lines"] == [
        {"sku": "A", "quantity": 1, "lot": "L1"},
        {"sku": "A", "quantity": 2, "lot": "L2"},
    ]
    rows = stock_rows(client, "A")
    assert (rows[("WH1", "L1")]["picked"], rows[("WH1", "L1")]["available"]) == (1, 4)
    assert (rows[("WH1", "L2")]["picked"], rows[("WH1", "L2")]["available"]) == (0, 5)
    assert rows[("WH1", "L1")]["on_hand"] == 5  # nothing left the building
    assert line_of(client, fo_id, "A")["picked"] == 1

    (event,) = events_of(settings, "pick.put_away", 1)
    payload = event.payload(PickPutAway)
    assert (payload.put_away_id, payload.fulfillment_order_id, payload.order_id) == (
        body["put_away_id"],
        fo_id,
        "SO-1",
    )
    assert [(x.sku, x.quantity, x.lot) for x in payload.lines] == [("A", 1, "L1"), ("A", 2, "L2")]
    assert event.subject == "warehouse:WH1"
    # receipt 1, picks 2 and 3, put-away 4: the warehouse's stock order, no gap.
    assert stock_sequences(settings) == [1, 2, 3, 4]

    # Picked stock blocks the cancel until the last unit is put away.
    assert_problem(
        client.post(f"/wms/v1/fulfillment-orders/{fo_id}/cancel"), 409, "invalid-fulfillment-status"
    )
    last = put_away(client, fo_id, [{"sku": "A", "quantity": 1, "lot": "L1"}], key="u2")
    assert last.status_code == 201, last.text
    cancelled = client.post(f"/wms/v1/fulfillment-orders/{fo_id}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert all(r["picked"] == 0 and r["available"] == 5 for r in stock_rows(client, "A").values())


def test_more_than_picked_and_unshipped_is_409_and_changes_nothing(
    client: TestClient[Any], settings: Settings
) -> None:
    add_warehouse(client)
    receive(client, [{"sku": "A", "quantity": 10}], key="rcv")
    fo_id = release(client, [{"sku": "A", "quantity": 5}], key="fo")["fulfillment_order_id"]
    pick(client, fo_id, [{"sku": "A", "quantity": 3}], key="p1")
    shipped = post(
        client,
        f"/wms/v1/fulfillment-orders/{fo_id}/shipments",
        {"carrier": "UPS", "tracking_number": "1Z1", "lines": [{"sku": "A", "quantity": 1}]},
        key="s1",
    )
    assert shipped.status_code == 201, shipped.text
    before = (stock_rows(client, "A"), line_of(client, fo_id, "A"), outbox_count(settings))

    # 3 picked, 1 of them shipped: 2 may come back, not 3, and not from a lot never picked.
    assert_problem(
        put_away(client, fo_id, [{"sku": "A", "quantity": 3}], key="u1"), 409, "over-put-away"
    )
    wrong_lot = put_away(client, fo_id, [{"sku": "A", "quantity": 1, "lot": "L9"}], key="u2")
    assert_problem(wrong_lot, 409, "over-put-away")
    assert_problem(
        put_away(client, fo_id, [{"sku": "B", "quantity": 1}], key="u3"), 409, "over-put-away"
    )
    assert (stock_rows(client, "A"), line_of(client, fo_id, "A"), outbox_count(settings)) == before

    assert put_away(client, fo_id, [{"sku": "A", "quantity": 2}], key="u4").status_code == 201
    assert stock_rows(client, "A")[("WH1", None)] == {
        "on_hand": 9,
        "quality_control": 0,
        "damaged": 0,
        "hold": 0,
        "picked": 0,
        "available": 9,
    }
    assert line_of(client, fo_id, "A") == {"sku": "A", "quantity": 5, "shipped": 1, "picked": 1}
    assert_problem(put_away(client, "FO-nope", [{"sku": "A", "quantity": 1}], key="u5"), 404)
    no_key = client.post(
        f"/wms/v1/fulfillment-orders/{fo_id}/put-aways",
        json={"lines": [{"sku": "A", "quantity": 1}]},
    )
    assert no_key.status_code == 400


def test_a_shipment_after_a_put_away_takes_what_is_still_picked_then_free_stock(
    client: TestClient[Any],
) -> None:
    add_warehouse(client)
    receive(client, [{"sku": "A", "quantity": 10}], key="rcv")
    fo_id = release(client, [{"sku": "A", "quantity": 4}], key="fo")["fulfillment_order_id"]
    pick(client, fo_id, [{"sku": "A", "quantity": 3}], key="p1")
    assert put_away(client, fo_id, [{"sku": "A", "quantity": 2}], key="u1").status_code == 201

    shipped = post(
        client,
        f"/wms/v1/fulfillment-orders/{fo_id}/shipments",
        {"carrier": "UPS", "tracking_number": "1Z1", "lines": [{"sku": "A", "quantity": 4}]},
        key="s1",
    )
    assert shipped.status_code == 201, shipped.text
    row = stock_rows(client, "A")[("WH1", None)]
    assert (row["on_hand"], row["picked"], row["available"]) == (6, 0, 6)
    # Nothing is left picked, so nothing can be put away any more.
    assert_problem(
        put_away(client, fo_id, [{"sku": "A", "quantity": 1}], key="u2"), 409, "over-put-away"
    )


def test_a_put_away_replayed_puts_away_once(client: TestClient[Any], settings: Settings) -> None:
    add_warehouse(client)
    receive(client, [{"sku": "A", "quantity": 5}], key="rcv")
    fo_id = release(client, [{"sku": "A", "quantity": 5}], key="fo")["fulfillment_order_id"]
    pick(client, fo_id, [{"sku": "A", "quantity": 4}], key="p1")

    first = put_away(client, fo_id, [{"sku": "A", "quantity": 2}], key="u1")
    outbox_after_first = outbox_count(settings)
    again = put_away(client, fo_id, [{"sku": "A", "quantity": 2}], key="u1")
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert stock_rows(client, "A")[("WH1", None)]["picked"] == 2
    other = put_away(client, fo_id, [{"sku": "A", "quantity": 1}], key="u1")
    assert_problem(other, 422)
    assert outbox_count(settings) == outbox_after_first  # no second event
    assert len(events_of(settings, "pick.put_away", 1)) == 1
