"""The place-order saga against the real ERP, WMS and availability services."""

from __future__ import annotations

from tests.orders.helpers import (
    allocated,
    body,
    fulfillment_orders,
    history_of,
    new_customer,
    orders_of,
    place,
    settled,
    stocked_item,
    uid,
)
from tests.support.stack import Stack


def test_order_is_allocated_and_released_to_the_warehouse(
    full_stack: Stack, warehouse: str
) -> None:
    customer_id = new_customer(full_stack)
    a = stocked_item(full_stack, warehouse, 10, price=1250)
    b = stocked_item(full_stack, warehouse, 5, price=300)
    response = place(full_stack, body(customer_id, (a, 4), (b, 5)))
    assert response.status_code == 201, response.text
    accepted = response.json()
    # Accepted and allocated at once; the release to the warehouse follows (queued).
    assert accepted["status"] in ("accepted", "released")
    assert accepted["customer_id"] == customer_id
    assert accepted["currency"] == "USD"
    order = settled(full_stack, accepted["order_id"], status="released")
    lines = {line["sku"]: line for line in order["lines"]}
    assert lines[a] == {
        "sku": a,
        "quantity": 4,
        "allocated": 4,
        "backordered": 0,
        "released": 4,
        "picked": 0,
        "shipped": 0,
        "delivered": 0,
        "cancelled": 0,
        "invoiced": 0,
        "returned": 0,
        "unit_price": {"amount_minor": 1250, "currency": "USD"},
    }
    assert lines[b]["allocated"] == lines[b]["released"] == 5
    assert allocated(full_stack, a) == 4
    assert [(h["from"], h["to"]) for h in history_of(full_stack, order["order_id"])] == [
        (None, "pending"),
        ("pending", "accepted"),
        ("accepted", "released"),
    ]
    fos = fulfillment_orders(full_stack, order["order_id"])
    assert [(fo["warehouse_id"], fo["status"]) for fo in fos] == [(warehouse, "released")]
    assert order["fulfillment_orders"] == [
        {"fulfillment_order_id": fos[0]["fulfillment_order_id"], "warehouse_id": warehouse}
    ]
    with full_stack.client("order_to_ship", "orders:read") as orders:
        again = orders.get(f"/orders/v1/orders/{order['order_id']}")
    assert again.status_code == 200
    assert again.json() == order


def test_same_key_replays_the_order_and_allocates_once(full_stack: Stack, warehouse: str) -> None:
    customer_id = new_customer(full_stack)
    sku = stocked_item(full_stack, warehouse, 10)
    key = uid("key")
    first = place(full_stack, body(customer_id, (sku, 3)), key)
    second = place(full_stack, body(customer_id, (sku, 3)), key)
    assert first.status_code == 201, first.text
    assert second.status_code == 201, second.text
    assert second.headers.get("idempotent-replayed") == "true"
    assert "idempotent-replayed" not in first.headers
    assert second.json()["order_id"] == first.json()["order_id"]
    assert allocated(full_stack, sku) == 3
    assert len(orders_of(full_stack, customer_id)) == 1
    settled(full_stack, first.json()["order_id"])
    assert len(fulfillment_orders(full_stack, first.json()["order_id"])) == 1


def test_same_key_with_another_body_is_422(full_stack: Stack, warehouse: str) -> None:
    customer_id = new_customer(full_stack)
    sku = stocked_item(full_stack, warehouse, 10)
    key = uid("key")
    assert place(full_stack, body(customer_id, (sku, 1)), key).status_code == 201
    response = place(full_stack, body(customer_id, (sku, 2)), key)
    assert response.status_code == 422, response.text
    assert response.json()["type"] == "/problems/idempotency-key-reused"
    assert allocated(full_stack, sku) == 1


def test_insufficient_stock_is_409_and_leaves_nothing(full_stack: Stack, warehouse: str) -> None:
    customer_id = new_customer(full_stack)
    sku = stocked_item(full_stack, warehouse, 2)
    key = uid("key")
    response = place(full_stack, body(customer_id, (sku, 5)), key)
    assert response.status_code == 409, response.text
    problem = response.json()
    assert problem["type"] == "/problems/insufficient-stock"
    assert problem.get("detail")
    assert orders_of(full_stack, customer_id) == []
    assert allocated(full_stack, sku) == 0
    # The key was forgotten with the order: it may carry another request now.
    retry = place(full_stack, body(customer_id, (sku, 2)), key)
    assert retry.status_code == 201, retry.text
    assert "idempotent-replayed" not in retry.headers


def test_partial_policy_backorders_what_is_missing(full_stack: Stack, warehouse: str) -> None:
    customer_id = new_customer(full_stack)
    sku = stocked_item(full_stack, warehouse, 2)
    response = place(full_stack, body(customer_id, (sku, 5), policy="partial"))
    assert response.status_code == 201, response.text
    order = settled(full_stack, response.json()["order_id"])
    assert order["status"] == "partially_allocated"
    assert order["lines"][0]["allocated"] == order["lines"][0]["released"] == 2
    assert order["lines"][0]["backordered"] == 3
    (fo,) = fulfillment_orders(full_stack, order["order_id"])
    assert fo["lines"][0]["quantity"] == 2


def test_ship_complete_without_stock_is_backordered(full_stack: Stack, warehouse: str) -> None:
    customer_id = new_customer(full_stack)
    sku = stocked_item(full_stack, warehouse, 1)
    response = place(full_stack, body(customer_id, (sku, 4), policy="ship_complete"))
    assert response.status_code == 201, response.text
    order = response.json()
    assert order["status"] == "backordered"
    assert order["lines"][0]["allocated"] == 0
    assert order["lines"][0]["backordered"] == 4
    assert fulfillment_orders(full_stack, order["order_id"]) == []
    with full_stack.client("order_to_ship", "orders:write") as orders:
        cancelled = orders.post(f"/orders/v1/orders/{order['order_id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"


def test_bound_client_sees_only_its_own_orders(full_stack: Stack, warehouse: str) -> None:
    mine = new_customer(full_stack)
    theirs = new_customer(full_stack)
    sku = stocked_item(full_stack, warehouse, 10)
    own = place(full_stack, body(mine, (sku, 1)), customer_id=mine, client_id="portal-mine")
    other = place(full_stack, body(theirs, (sku, 1)))
    assert own.status_code == 201, own.text
    assert other.status_code == 201, other.text
    other_id = other.json()["order_id"]
    with full_stack.client("order_to_ship", "orders:read orders:write", customer_id=mine) as bound:
        assert bound.get(f"/orders/v1/orders/{other_id}").status_code == 404
        assert bound.post(f"/orders/v1/orders/{other_id}/cancel").status_code == 404
        assert bound.get(f"/orders/v1/orders/{own.json()['order_id']}").status_code == 200
        listed = bound.get("/orders/v1/orders").json()["items"]
        assert {order["customer_id"] for order in listed} == {mine}
        assert bound.get("/orders/v1/orders", params={"customer_id": theirs}).json() == {
            "items": [],
            "next_cursor": None,
        }


def test_concurrent_requests_with_one_key_place_one_order(
    full_stack: Stack, warehouse: str
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    customer_id = new_customer(full_stack)
    sku = stocked_item(full_stack, warehouse, 10)
    key = uid("key")
    with ThreadPoolExecutor(4) as pool:
        answers = list(
            pool.map(lambda _: place(full_stack, body(customer_id, (sku, 2)), key), range(4))
        )
    codes = sorted(a.status_code for a in answers)
    # Never a 409 "in progress": the order is named from its first transaction on, so a
    # repeat that arrives while it allocates gets it at once (202, pending).
    assert set(codes) <= {201, 202}, [a.text for a in answers]
    assert 201 in codes
    assert len({a.json()["order_id"] for a in answers}) == 1
    assert len(orders_of(full_stack, customer_id)) == 1
    assert allocated(full_stack, sku) == 2
