"""Placing an order: the refusals decided before anything is written (ERP checks,
contract, scopes, customer binding). These need only the ERP and the orders API."""

from __future__ import annotations

from tests.orders.helpers import (
    body,
    new_customer,
    new_item,
    orders_of,
    place,
    seed_released_order,
    uid,
)
from tests.support.stack import Stack


def test_unknown_customer_is_422_and_writes_nothing(stack: Stack) -> None:
    sku = new_item(stack)
    customer_id = uid("NOPE")
    response = place(stack, body(customer_id, (sku, 1)))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"] == "/problems/unknown-customer"
    assert orders_of(stack, customer_id) == []


def test_unknown_sku_is_422_and_writes_nothing(stack: Stack) -> None:
    customer_id = new_customer(stack)
    known = new_item(stack)
    response = place(stack, body(customer_id, (known, 1), ("NO-SUCH-SKU-1", 2)))
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["type"] == "/problems/unknown-sku"
    assert problem["skus"] == ["NO-SUCH-SKU-1"]
    assert orders_of(stack, customer_id) == []


def test_a_blocked_customer_is_422_and_writes_nothing(stack: Stack) -> None:
    customer_id = new_customer(stack)
    sku = new_item(stack)
    with stack.client("erp", "erp:write") as erp:
        blocked = erp.patch(f"/erp/v1/customers/{customer_id}", json={"status": "blocked"})
    assert blocked.status_code == 200, blocked.text
    response = place(stack, body(customer_id, (sku, 1)))
    assert response.status_code == 422, response.text
    assert response.json()["type"] == "/problems/customer-blocked"
    assert orders_of(stack, customer_id) == []


def test_item_priced_in_another_currency_is_422(stack: Stack) -> None:
    customer_id = new_customer(stack, currency="USD")
    sku = new_item(stack, currency="EUR")
    response = place(stack, body(customer_id, (sku, 1)))
    assert response.status_code == 422, response.text
    assert response.json()["type"] == "/problems/currency-mismatch"


def test_a_sku_on_two_lines_is_refused(stack: Stack) -> None:
    customer_id = new_customer(stack)
    sku = new_item(stack)
    response = place(stack, body(customer_id, (sku, 1), (sku, 2)))
    assert response.status_code == 422, response.text
    assert response.json()["type"] == "/problems/duplicate-sku"
    assert orders_of(stack, customer_id) == []


def test_idempotency_key_is_required(stack: Stack) -> None:
    customer_id = new_customer(stack)
    sku = new_item(stack)
    with stack.client("order_to_ship", "orders:write") as orders:
        response = orders.post("/orders/v1/orders", json=body(customer_id, (sku, 1)))
    assert response.status_code == 400, response.text


def test_contract_breaking_bodies_are_400(stack: Stack) -> None:
    customer_id = new_customer(stack)
    sku = new_item(stack)
    for broken in (
        body(customer_id),  # no lines
        body(customer_id, (sku, 0)),  # quantity below 1
        {**body(customer_id, (sku, 1)), "colour": "red"},  # unknown field
        body(customer_id, (sku, 1), policy="whenever"),
    ):
        response = place(stack, broken)
        assert response.status_code == 400, (broken, response.text)


def test_placing_needs_orders_write(stack: Stack) -> None:
    customer_id = new_customer(stack)
    sku = new_item(stack)
    with stack.client("order_to_ship", "orders:read") as orders:
        response = orders.post(
            "/orders/v1/orders",
            json=body(customer_id, (sku, 1)),
            headers={"Idempotency-Key": uid("key")},
        )
    assert response.status_code == 403, response.text


def test_bound_client_cannot_place_for_another_customer(stack: Stack) -> None:
    mine = new_customer(stack)
    theirs = new_customer(stack)
    sku = new_item(stack)
    # An existing other customer and an unknown one get the same answer (ADR 0014).
    for target in (theirs, uid("NOPE")):
        response = place(stack, body(target, (sku, 1)), customer_id=mine, client_id="portal-a")
        assert response.status_code == 403, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["type"] == "/problems/customer-not-permitted"
        assert theirs not in response.text
        assert orders_of(stack, target) == []
    assert orders_of(stack, mine) == []
    # The same client may place for its own customer, so the 403 is about the binding.
    response = place(stack, body(mine, (sku, 1)), customer_id=mine, client_id="portal-a")
    assert response.status_code in (201, 409), response.text


def test_an_oversized_order_body_is_413_and_writes_nothing(stack: Stack) -> None:
    customer_id = new_customer(stack)
    sku = new_item(stack)
    padded = body(customer_id, (sku, 1)) | {"channel": "x" * (128 * 1024)}
    response = place(stack, padded)
    assert response.status_code == 413, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert orders_of(stack, customer_id) == []


def test_unknown_order_is_404(stack: Stack) -> None:
    with stack.client("order_to_ship", "orders:read") as orders:
        assert orders.get("/orders/v1/orders/ORD-nope").status_code == 404
    with stack.client("order_to_ship", "orders:write") as orders:
        assert orders.post("/orders/v1/orders/ORD-nope/cancel").status_code == 404


def test_orders_are_listed_page_by_page(stack: Stack) -> None:
    customer_id = new_customer(stack)
    placed = [seed_released_order(stack, customer_id, [("SKU-P", 1, 100)]) for _ in range(3)]
    seen: list[str] = []
    cursor = None
    with stack.client("order_to_ship", "orders:read") as orders:
        while True:
            params = {"customer_id": customer_id, "limit": 2}
            if cursor:
                params["cursor"] = cursor
            page = orders.get("/orders/v1/orders", params=params).json()
            assert len(page["items"]) <= 2
            seen += [order["order_id"] for order in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert orders.get("/orders/v1/orders", params={"cursor": "!!"}).status_code == 400
    assert seen == sorted(placed)
