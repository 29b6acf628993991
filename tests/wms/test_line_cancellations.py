"""Line cancellations: a fulfillment order's lines shrink by units neither picked nor
shipped; the order ends cancelled or shipped when nothing open is left."""

from __future__ import annotations

from typing import Any

from litestar.testing import TestClient

from shared.settings import Settings
from tests.support.problems import assert_problem
from tests.support.service import post
from tests.wms.helpers import add_warehouse, outbox_count, receive, release, stock_rows


def cancel_lines(
    client: TestClient[Any], fo_id: str, lines: list[dict[str, Any]], *, key: str
) -> Any:
    return post(
        client, f"/wms/v1/fulfillment-orders/{fo_id}/line-cancellations", {"lines": lines}, key=key
    )


def act(client: TestClient[Any], fo_id: str, what: str, body: dict[str, Any], key: str) -> None:
    response = post(client, f"/wms/v1/fulfillment-orders/{fo_id}/{what}", body, key=key)
    assert response.status_code == 201, response.text


def test_only_open_unpicked_units_cancel_and_nothing_left_is_cancelled(
    client: TestClient[Any], settings: Settings
) -> None:
    add_warehouse(client)
    receive(client, [{"sku": "A", "quantity": 10}, {"sku": "B", "quantity": 10}], key="rcv")
    fo = release(client, [{"sku": "A", "quantity": 5}, {"sku": "B", "quantity": 2}], key="fo")
    fo_id = fo["fulfillment_order_id"]
    act(client, fo_id, "picks", {"lines": [{"sku": "A", "quantity": 2}]}, "p1")
    outbox_before = outbox_count(settings)

    cut = cancel_lines(client, fo_id, [{"sku": "A", "quantity": 3}], key="c1")
    assert cut.status_code == 200, cut.text
    assert cut.json()["status"] == "released"
    assert cut.json()["lines"] == [
        {"sku": "A", "quantity": 2, "shipped": 0, "picked": 2},
        {"sku": "B", "quantity": 2, "shipped": 0, "picked": 0},
    ]
    # Stock is untouched and no event is emitted: the caller made the decision.
    assert stock_rows(client, "A")[("WH1", None)]["picked"] == 2
    assert outbox_count(settings) == outbox_before

    # The 2 left are picked: they must be put away first.
    problem = assert_problem(
        cancel_lines(client, fo_id, [{"sku": "A", "quantity": 1}], key="c2"),
        409,
        "quantity-not-open",
    )
    assert (problem["sku"], problem["open_quantity"]) == ("A", 0)
    unknown = cancel_lines(client, fo_id, [{"sku": "Z", "quantity": 1}], key="c3")
    assert_problem(unknown, 422, "unknown-line")
    # A refused line refuses the whole request: B stays as it was.
    mixed = cancel_lines(
        client, fo_id, [{"sku": "B", "quantity": 2}, {"sku": "A", "quantity": 1}], key="c4"
    )
    assert_problem(mixed, 409, "quantity-not-open")
    assert client.get(f"/wms/v1/fulfillment-orders/{fo_id}").json()["lines"][1]["quantity"] == 2

    act(client, fo_id, "put-aways", {"lines": [{"sku": "A", "quantity": 2}]}, "u1")
    done = cancel_lines(
        client, fo_id, [{"sku": "A", "quantity": 2}, {"sku": "B", "quantity": 2}], key="c5"
    )
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "cancelled"
    assert [line["quantity"] for line in done.json()["lines"]] == [0, 0]
    assert_problem(
        cancel_lines(client, fo_id, [{"sku": "A", "quantity": 1}], key="c6"),
        409,
        "invalid-fulfillment-status",
    )


def test_cancelling_what_is_left_of_a_partly_shipped_order_ships_it(
    client: TestClient[Any],
) -> None:
    add_warehouse(client)
    receive(client, [{"sku": "A", "quantity": 10}], key="rcv")
    fo_id = release(client, [{"sku": "A", "quantity": 5}], key="fo")["fulfillment_order_id"]
    shipment = {"carrier": "UPS", "tracking_number": "1Z1", "lines": [{"sku": "A", "quantity": 2}]}
    act(client, fo_id, "shipments", shipment, "s1")

    # Shipped units never come back: 3 are open.
    too_many = cancel_lines(client, fo_id, [{"sku": "A", "quantity": 4}], key="c1")
    assert assert_problem(too_many, 409, "quantity-not-open")["open_quantity"] == 3
    rest = cancel_lines(client, fo_id, [{"sku": "A", "quantity": 3}], key="c2")
    assert rest.status_code == 200, rest.text
    assert rest.json()["status"] == "shipped"
    assert rest.json()["lines"] == [{"sku": "A", "quantity": 2, "shipped": 2, "picked": 0}]


def test_a_line_cancellation_replayed_cancels_once(client: TestClient[Any]) -> None:
    add_warehouse(client)
    fo_id = release(client, [{"sku": "A", "quantity": 5}], key="fo")["fulfillment_order_id"]
    first = cancel_lines(client, fo_id, [{"sku": "A", "quantity": 2}], key="c1")
    again = cancel_lines(client, fo_id, [{"sku": "A", "quantity": 2}], key="c1")
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert client.get(f"/wms/v1/fulfillment-orders/{fo_id}").json()["lines"][0]["quantity"] == 3
    assert_problem(cancel_lines(client, fo_id, [{"sku": "A", "quantity": 1}], key="c1"), 422)
    assert_problem(cancel_lines(client, "FO-nope", [{"sku": "A", "quantity": 1}], key="c2"), 404)
    duplicate = cancel_lines(
        client, fo_id, [{"sku": "A", "quantity": 1}, {"sku": "A", "quantity": 1}], key="c3"
    )
    assert_problem(duplicate, 422, "duplicate-line")
