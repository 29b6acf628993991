"""``POST /orders/v1/orders/batch`` (decision 0055): a partner's file of orders in one
call, each placed as its single call would place it, under its own key, through the
real ERP, availability and WMS."""

from __future__ import annotations

from typing import Any

from tests.orders.helpers import (
    allocated,
    atp,
    body,
    calls_answered,
    new_customer,
    new_item,
    orders_of,
    place,
    settled,
    stocked_item,
    stopped,
    uid,
)
from tests.support.money import usd
from tests.support.polling import wait_until
from tests.support.problems import assert_problem
from tests.support.stack import Stack


def place_batch(stack: Stack, items: list[tuple[str, dict[str, Any]]], **client: Any) -> Any:
    payload = {"orders": [{"idempotency_key": key, "order": order} for key, order in items]}
    with stack.client("order_to_ship", "orders:write orders:read", **client) as orders:
        return orders.post("/orders/v1/orders/batch", json=payload)


def test_each_order_of_a_batch_is_placed_or_refused_as_its_single_call_would_be(
    full_stack: Stack, warehouse: str
) -> None:
    customer_id, other = new_customer(full_stack), new_customer(full_stack)
    sku = stocked_item(full_stack, warehouse, 10)
    scarce = stocked_item(full_stack, warehouse, 1)
    items = [
        (uid("edi"), body(customer_id, (sku, 4), policy="partial")),
        (uid("edi"), body(customer_id, (scarce, 3), policy="reject")),  # short: refused
        (uid("edi"), body(other, (sku, 1))),  # another customer's: refused
        (uid("edi"), body(customer_id, ("NO-SUCH-SKU-1", 1))),  # unknown sku: refused
        (uid("edi"), body(customer_id, (sku, 2), (scarce, 1), policy="partial")),
    ]
    answer = place_batch(full_stack, items, customer_id=customer_id)
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [r["idempotency_key"] for r in results] == [key for key, _ in items]
    first, short, foreign, unknown, last = results
    assert first["status"] == 201 and first["order"]["customer_id"] == customer_id
    assert first["order"]["status"] in ("accepted", "released")
    assert (short["refusal"]["status"], short["refusal"]["type"]) == (
        409,
        "/problems/insufficient-stock",
    )
    assert (foreign["refusal"]["status"], foreign["refusal"]["type"]) == (
        403,
        "/problems/customer-not-permitted",
    )
    assert unknown["refusal"]["status"] == 422
    assert last["status"] == 201
    assert all("order" not in r for r in (short, foreign, unknown))

    # What was placed is the two orders, allocated as their lines asked; the refused
    # ones left nothing (the short one's unit is the last order's).
    placed = sorted(o["order_id"] for o in orders_of(full_stack, customer_id))
    assert placed == sorted([first["order"]["order_id"], last["order"]["order_id"]])
    assert orders_of(full_stack, other) == []
    for result in (first, last):
        settled(full_stack, result["order"]["order_id"])
    assert allocated(full_stack, sku) == 6 and atp(full_stack, sku) == 4
    assert allocated(full_stack, scarce) == 1 and atp(full_stack, scarce) == 0


TERMS_ROUTES = ("/erp/v1/customers/{customer_id}/order-terms", "/erp/v1/order-terms/batch")


def terms_calls(stack: Stack) -> dict[str, float]:
    """The ERP's order-terms reads, single and batch (here only order_to_ship's)."""
    return {
        **calls_answered(stack, "erp", "GET", TERMS_ROUTES[:1]),
        **calls_answered(stack, "erp", "POST", TERMS_ROUTES[1:]),
    }


def test_a_batch_of_several_customers_reads_their_terms_in_one_call(
    full_stack: Stack, warehouse: str
) -> None:
    """Decision 0061: each order is priced and credit-checked by its own customer's
    terms, an unknown customer's order refused alone, all read in one ERP call."""
    special, tight = new_customer(full_stack), new_customer(full_stack, credit=3000)
    sku = stocked_item(full_stack, warehouse, 20, price=1250)
    with full_stack.client("erp", "erp:write") as erp:
        own = erp.put(
            f"/erp/v1/customers/{special}/prices/{sku}",
            json={"unit_price": usd(999)},
        )
    assert own.status_code == 200, own.text
    items = [
        (uid("edi"), body(special, (sku, 2))),
        (uid("edi"), body(tight, (sku, 2))),  # 2,500 of 3,000
        (uid("edi"), body(uid("CUST-NONE"), (sku, 1))),
        (uid("edi"), body(tight, (sku, 1))),  # 1,250 more: over the limit, held
    ]
    before = terms_calls(full_stack)
    answer = place_batch(full_stack, items)
    assert answer.status_code == 200, answer.text
    after = terms_calls(full_stack)
    assert {route: after[route] - before[route] for route in TERMS_ROUTES} == {
        TERMS_ROUTES[0]: 0,
        TERMS_ROUTES[1]: 1,
    }
    first, second, unknown, held = answer.json()["results"]
    assert [line["unit_price"] for line in first["order"]["lines"]] == [usd(999)]
    assert [line["unit_price"] for line in second["order"]["lines"]] == [usd(1250)]
    assert (unknown["refusal"]["status"], unknown["refusal"]["type"]) == (
        422,
        "/problems/unknown-customer",
    )
    assert second["order"]["status"] != "on_hold"
    assert held["order"]["status"] == "on_hold"
    assert orders_of(full_stack, special)[0]["order_id"] == first["order"]["order_id"]


def test_a_batch_of_several_customers_with_the_erp_away_refuses_each_order_for_now(
    full_stack: Stack, warehouse: str
) -> None:
    """Each order is that call's 503 (to send again under its key), as with one
    customer; nothing is placed."""
    first, second = new_customer(full_stack), new_customer(full_stack)
    sku = stocked_item(full_stack, warehouse, 5)
    items = [(uid("edi"), body(first, (sku, 1))), (uid("edi"), body(second, (sku, 1)))]
    with stopped(full_stack, "erp"):
        answer = place_batch(full_stack, items)
    assert answer.status_code == 200, answer.text
    assert [r["refusal"]["status"] for r in answer.json()["results"]] == [503, 503]
    assert orders_of(full_stack, first) == orders_of(full_stack, second) == []
    again = place_batch(full_stack, items)
    assert [r["status"] for r in again.json()["results"]] == [201, 201], again.text


def test_a_batch_sent_again_places_nothing_twice_and_shares_keys_with_the_single_call(
    full_stack: Stack, warehouse: str
) -> None:
    customer_id = new_customer(full_stack)
    sku = stocked_item(full_stack, warehouse, 10)
    items = [(uid("feed"), body(customer_id, (sku, n), policy="partial")) for n in (1, 2, 3)]
    first = place_batch(full_stack, items, customer_id=customer_id)
    assert first.status_code == 200, first.text
    ids = [r["order"]["order_id"] for r in first.json()["results"]]
    assert len(set(ids)) == 3

    again = place_batch(full_stack, items, customer_id=customer_id)
    assert again.status_code == 200, again.text
    assert [r["order"]["order_id"] for r in again.json()["results"]] == ids
    # The single call with an item's key answers that item's order, and the other way.
    single = place(full_stack, items[1][1], items[1][0], customer_id=customer_id)
    assert single.status_code == 201, single.text
    assert single.headers.get("idempotent-replayed") == "true"
    assert single.json()["order_id"] == ids[1]
    alone_key = uid("single")
    alone = place(full_stack, body(customer_id, (sku, 1)), alone_key, customer_id=customer_id)
    assert alone.status_code == 201, alone.text
    mixed = place_batch(
        full_stack,
        [(alone_key, body(customer_id, (sku, 1))), items[0]],
        customer_id=customer_id,
    )
    assert [r["order"]["order_id"] for r in mixed.json()["results"]] == [
        alone.json()["order_id"],
        ids[0],
    ]
    # A key reused with another order is that item's 422; the others still answer.
    reused = place_batch(
        full_stack,
        [(items[2][0], body(customer_id, (sku, 5))), items[0]],
        customer_id=customer_id,
    )
    refused, replayed = reused.json()["results"]
    assert refused["refusal"]["status"] == 422
    assert replayed["order"]["order_id"] == ids[0]
    assert len(orders_of(full_stack, customer_id)) == 4
    assert allocated(full_stack, sku) == 1 + 2 + 3 + 1


def test_a_batch_with_a_key_twice_is_refused_whole_and_places_nothing(
    full_stack: Stack, warehouse: str
) -> None:
    customer_id = new_customer(full_stack)
    sku = stocked_item(full_stack, warehouse, 5)
    key = uid("twice")
    answer = place_batch(
        full_stack,
        [(key, body(customer_id, (sku, 1))), (key, body(customer_id, (sku, 2)))],
        customer_id=customer_id,
    )
    assert_problem(answer, 422, "duplicate-idempotency-key")
    assert orders_of(full_stack, customer_id) == []
    assert allocated(full_stack, sku) == 0


def test_an_empty_or_oversized_batch_is_a_400_and_places_nothing(
    full_stack: Stack, warehouse: str
) -> None:
    customer_id = new_customer(full_stack)
    sku = new_item(full_stack)
    assert_problem(place_batch(full_stack, [], customer_id=customer_id), 400)
    many = [(uid("many"), body(customer_id, (sku, 1), policy="partial")) for _ in range(101)]
    assert_problem(place_batch(full_stack, many, customer_id=customer_id), 400)
    with full_stack.client("order_to_ship", "orders:write", customer_id=customer_id) as orders:
        unknown_field = orders.post(
            "/orders/v1/orders/batch",
            json={
                "orders": [{"idempotency_key": "k", "order": body(customer_id, (sku, 1))}],
                "extra": 1,
            },
        )
    assert_problem(unknown_field, 400)
    assert orders_of(full_stack, customer_id) == []


def test_a_batch_needs_the_write_scope(full_stack: Stack, warehouse: str) -> None:
    customer_id = new_customer(full_stack)
    sku = stocked_item(full_stack, warehouse, 5)
    payload = {"orders": [{"idempotency_key": uid("k"), "order": body(customer_id, (sku, 1))}]}
    with full_stack.client("order_to_ship", "orders:read", customer_id=customer_id) as orders:
        answer = orders.post("/orders/v1/orders/batch", json=payload)
    assert_problem(answer, 403, "insufficient-scope", correlated=False)
    assert orders_of(full_stack, customer_id) == []


def test_the_erp_down_refuses_each_order_503_and_the_same_batch_places_them_later(
    full_stack: Stack, warehouse: str
) -> None:
    customer_id = new_customer(full_stack)
    sku = stocked_item(full_stack, warehouse, 10)
    items = [(uid("down"), body(customer_id, (sku, n), policy="partial")) for n in (1, 2)]
    with full_stack.down("erp"):
        answer = place_batch(full_stack, items, customer_id=customer_id)
        assert answer.status_code == 200, answer.text
        assert [r["refusal"]["status"] for r in answer.json()["results"]] == [503, 503]
        assert orders_of(full_stack, customer_id) == []
        assert allocated(full_stack, sku) == 0

    def placed() -> Any:
        again = place_batch(full_stack, items, customer_id=customer_id)
        results = again.json()["results"]
        return results if all("order" in r for r in results) else None

    results = wait_until(placed, timeout=60, what="the batch placed after the ERP returned")
    assert [r["status"] for r in results] == [201, 201]
    assert len(orders_of(full_stack, customer_id)) == 2
    assert allocated(full_stack, sku) == 3


def test_each_credit_check_counts_the_customers_orders_ahead_of_it_in_the_batch(
    full_stack: Stack, warehouse: str
) -> None:
    """The batch reads a customer's terms once; its orders are checked against the limit
    in the batch's order, each counting the ones before it (an item costs 1,250)."""
    customer_id = new_customer(full_stack, credit=10_000)
    sku = stocked_item(full_stack, warehouse, 20)
    items = [(uid("credit"), body(customer_id, (sku, n))) for n in (6, 3, 1)]
    answer = place_batch(full_stack, items, customer_id=customer_id)
    assert answer.status_code == 200, answer.text
    within, over, after = (r["order"] for r in answer.json()["results"])
    assert within["hold_reason"] is None and within["status"] != "on_hold"
    assert (over["status"], over["hold_reason"]) == ("on_hold", "credit")
    assert over["credit"]["exposure"] == usd(7_500)
    # The held order is open: it counts for the next one as for a later single call.
    assert (after["status"], after["credit"]["exposure"]) == ("on_hold", usd(11_250))
    assert allocated(full_stack, sku) == 10


def test_a_batch_for_several_customers_refuses_only_the_unknown_customers_orders(
    full_stack: Stack, warehouse: str
) -> None:
    """An unbound client's file names several customers: each customer's terms are its
    own, and one customer's refusal leaves the other's orders alone."""
    first, second = new_customer(full_stack), new_customer(full_stack)
    sku = stocked_item(full_stack, warehouse, 10)
    cheap = stocked_item(full_stack, warehouse, 10, price=300)
    items = [
        (uid("multi"), body(first, (sku, 1))),
        (uid("multi"), body("CUST-NOBODY-" + uid("x"), (sku, 1))),
        (uid("multi"), body(second, (cheap, 2), (sku, 1))),
        (uid("multi"), body(first, (cheap, 1))),
    ]
    answer = place_batch(full_stack, items)
    assert answer.status_code == 200, answer.text
    one, unknown, two, three = answer.json()["results"]
    assert (unknown["refusal"]["status"], unknown["refusal"]["type"]) == (
        422,
        "/problems/unknown-customer",
    )
    assert [r["order"]["customer_id"] for r in (one, two, three)] == [first, second, first]
    assert [r["status"] for r in (one, two, three)] == [201, 201, 201]
    assert [line["unit_price"]["amount_minor"] for line in two["order"]["lines"]] == [300, 1250]
    assert len(orders_of(full_stack, first)) == 2 and len(orders_of(full_stack, second)) == 1
    assert allocated(full_stack, sku) == 2 and allocated(full_stack, cheap) == 3


def test_availability_down_answers_each_new_order_202_and_they_are_allocated_once_later(
    full_stack: Stack, warehouse: str
) -> None:
    customer_id = new_customer(full_stack)
    sku = stocked_item(full_stack, warehouse, 10)
    items = [(uid("noatp"), body(customer_id, (sku, n), policy="partial")) for n in (2, 3)]
    with full_stack.down("availability"):
        answer = place_batch(full_stack, items, customer_id=customer_id)
        assert answer.status_code == 200, answer.text
        results = answer.json()["results"]
        assert [r["status"] for r in results] == [202, 202]
        assert [r["order"]["status"] for r in results] == ["pending", "pending"]
        order_ids = [r["order"]["order_id"] for r in results]
        assert sorted(o["order_id"] for o in orders_of(full_stack, customer_id)) == sorted(
            order_ids
        )

    # Back: the resumer (or the resent batch's retry) allocates each order once; the
    # keys answer the same orders.
    def allocated_both() -> Any:
        again = place_batch(full_stack, items, customer_id=customer_id).json()["results"]
        return again if [r["status"] for r in again] == [201, 201] else None

    again = wait_until(allocated_both, timeout=60, what="the pending orders allocated")
    assert [r["order"]["order_id"] for r in again] == order_ids
    for order_id in order_ids:
        settled(full_stack, order_id)
    assert allocated(full_stack, sku) == 5 and atp(full_stack, sku) == 5
    assert len(orders_of(full_stack, customer_id)) == 2


def test_a_customers_orders_naming_more_skus_than_one_terms_read_are_priced_alike(
    full_stack: Stack,
) -> None:
    """One order has at most 100 lines; a file's orders of one customer may name more
    skus than the ERP's terms read takes at once (100): each order is still priced."""
    customer_id = new_customer(full_stack)
    skus = [new_item(full_stack, price=700 + n) for n in range(120)]
    items = [
        (uid("wide"), body(customer_id, *[(sku, 1) for sku in half], policy="partial"))
        for half in (skus[:60], skus[60:])
    ]
    answer = place_batch(full_stack, items, customer_id=customer_id)
    assert answer.status_code == 200, answer.text
    orders = [r["order"] for r in answer.json()["results"]]
    prices = [line["unit_price"]["amount_minor"] for order in orders for line in order["lines"]]
    assert prices == [700 + n for n in range(120)]
    assert all(line["backordered"] == 1 for order in orders for line in order["lines"])
