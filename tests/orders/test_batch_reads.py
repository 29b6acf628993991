"""The batch reads the portal builds on (issue 18), over the real services: the orders
list's filters and count, orders and their histories by ids, the RMAs list, the
customer's account and the catalog with the customer's price; a client bound to a
customer sees its own only (another's left out, 404 or 403 as each route says)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.orders.helpers import (
    body,
    fulfillments,
    history_of,
    line_of,
    new_customer,
    new_item,
    place,
    settled,
    ship,
    stocked_item,
    uid,
    wait_order,
)
from tests.support.stack import Stack

READ = "orders:read"


def get(
    stack: Stack,
    path: str,
    params: Any = None,
    *,
    bound: str | None = None,
    status: int = 200,
) -> Any:
    with stack.client("order_to_ship", READ, customer_id=bound) as orders:
        response = orders.get(path, params=params)
    assert response.status_code == status, response.text
    return response.json()


def ids(page: dict[str, Any], key: str = "order_id") -> list[str]:
    return [item[key] for item in page["items"]]


def placed(stack: Stack, data: dict[str, Any]) -> dict[str, Any]:
    response = place(stack, data)
    assert response.status_code == 201, response.text
    order: dict[str, Any] = response.json()
    return order


def test_the_orders_list_filters_counts_and_pages(full_stack: Stack, warehouse: str) -> None:
    stack = full_stack
    customer = new_customer(stack)
    a = stocked_item(stack, warehouse, 20)
    b = stocked_item(stack, warehouse, 20)
    first = placed(stack, body(customer, (a, 1)))
    second = placed(stack, body(customer, (b, 1)))
    third = placed(stack, {**body(customer, (a, 1), (b, 1)), "channel": "edi"})
    every = sorted(o["order_id"] for o in (first, second, third))
    for order in (first, second, third):
        settled(stack, order["order_id"])
    with stack.client("order_to_ship", "orders:write") as orders:
        response = orders.post(f"/orders/v1/orders/{second['order_id']}/cancel")
    assert response.status_code == 200, response.text
    cancelled = response.json()
    assert cancelled["status"] == "cancelled"

    mine = {"customer_id": customer}
    listed = get(stack, "/orders/v1/orders", {**mine, "count": "true"})
    assert ids(listed) == every
    assert listed["total_count"] == 3
    # Without count=true there is no total_count at all: lists answer as before.
    assert "total_count" not in get(stack, "/orders/v1/orders", mine)

    assert ids(get(stack, "/orders/v1/orders", {**mine, "sku": b})) == sorted(
        [second["order_id"], third["order_id"]]
    )
    assert ids(get(stack, "/orders/v1/orders", {**mine, "channel": "edi"})) == [third["order_id"]]
    assert ids(get(stack, "/orders/v1/orders", {**mine, "status": "cancelled"})) == [
        second["order_id"]
    ]
    live = get(
        stack,
        "/orders/v1/orders",
        [("customer_id", customer), ("status", "released"), ("status", "accepted")],
    )
    assert ids(live) == sorted([first["order_id"], third["order_id"]])
    # placed_from / placed_to: created_at in [from, to).
    at = second["created_at"]
    assert ids(get(stack, "/orders/v1/orders", {**mine, "placed_from": at})) == sorted(
        [second["order_id"], third["order_id"]]
    )
    assert ids(get(stack, "/orders/v1/orders", {**mine, "placed_to": at})) == [first["order_id"]]
    nothing = get(
        stack,
        "/orders/v1/orders",
        {**mine, "placed_from": at, "placed_to": at, "count": "true"},
    )
    assert (nothing["items"], nothing["total_count"]) == ([], 0)
    # Only an RFC 3339 date-time with its offset is a time: a number, a date alone, a
    # naive time or an impossible date is a 400.
    for bad in ("0.5", "2026-12-05", "2026-12-05T10:00:00", "2026-13-05T10:00:00Z"):
        refused = get(stack, "/orders/v1/orders", {**mine, "placed_to": bad}, status=400)
        assert refused["type"] == "/problems/invalid-request", refused

    # Keyset pages keep the filter; total_count counts every page.
    seen: list[str] = []
    cursor = None
    while True:
        params = {**mine, "limit": "1", "count": "true", **({"cursor": cursor} if cursor else {})}
        page = get(stack, "/orders/v1/orders", params)
        assert page["total_count"] == 3
        seen += ids(page)
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == every


def test_orders_by_ids_answer_only_those_the_caller_may_see(
    full_stack: Stack, warehouse: str
) -> None:
    stack = full_stack
    mine, theirs = new_customer(stack), new_customer(stack)
    sku = stocked_item(stack, warehouse, 10)
    one = placed(stack, body(mine, (sku, 1)))["order_id"]
    two = placed(stack, body(mine, (sku, 1)))["order_id"]
    other = placed(stack, body(theirs, (sku, 1)))["order_id"]
    asked = [("order_id", i) for i in (two, uid("ORD-NONE"), other, one)]

    assert ids(get(stack, "/orders/v1/orders", asked)) == sorted([one, two, other])
    by_owner = get(stack, "/orders/v1/orders", [*asked, ("count", "true")], bound=mine)
    assert ids(by_owner) == sorted([one, two])
    assert by_owner["total_count"] == 2
    assert ids(get(stack, "/orders/v1/orders", asked, bound=theirs)) == [other]
    # A bound client naming another customer gets an empty page, counted 0.
    named = get(stack, "/orders/v1/orders", {"customer_id": mine, "count": "true"}, bound=theirs)
    assert (named["items"], named["total_count"]) == ([], 0)
    # More than 100 ids is a 400, not a silent cut.
    too_many = [("order_id", f"ORD-{n}") for n in range(101)]
    get(stack, "/orders/v1/orders", too_many, status=400)


def test_histories_of_many_orders_in_one_read(full_stack: Stack, warehouse: str) -> None:
    stack = full_stack
    mine, theirs = new_customer(stack), new_customer(stack)
    sku = stocked_item(stack, warehouse, 10)
    one = placed(stack, body(mine, (sku, 1)))["order_id"]
    two = placed(stack, body(mine, (sku, 2)))["order_id"]
    other = placed(stack, body(theirs, (sku, 1)))["order_id"]
    for order_id in (one, two, other):
        settled(stack, order_id)
    asked = [("order_id", i) for i in (two, other, uid("ORD-NONE"), one)]

    answer = get(stack, "/orders/v1/history", asked)
    assert [h["order_id"] for h in answer["items"]] == sorted([one, two, other])
    for history in answer["items"]:
        assert history["entries"] == history_of(stack, history["order_id"])
        assert history["entries"][0]["from"] is None
        assert history["entries"][0]["to"] == "pending"

    owner = get(stack, "/orders/v1/history", asked, bound=mine)
    assert [h["order_id"] for h in owner["items"]] == sorted([one, two])
    assert get(stack, "/orders/v1/history", [("order_id", one)], bound=theirs) == {"items": []}
    get(stack, "/orders/v1/history", status=400)  # at least one id
    get(stack, "/orders/v1/history", [("order_id", f"O-{n}") for n in range(101)], status=400)


def shipped(stack: Stack, warehouse: str, customer: str) -> tuple[str, str]:
    sku = stocked_item(stack, warehouse, 5)
    order_id = placed(stack, body(customer, (sku, 3)))["order_id"]
    settled(stack, order_id)
    (fo,) = fulfillments(stack, order_id)
    ship(stack, fo, [(sku, 3)])
    wait_order(stack, order_id, lambda o: line_of(o, sku)["shipped"] == 3, "3 shipped")
    return order_id, sku


def authorised(stack: Stack, order_id: str, sku: str, quantity: int) -> dict[str, Any]:
    with stack.client("order_to_ship", "orders:write") as orders:
        response = orders.post(
            f"/orders/v1/orders/{order_id}/returns",
            json={"lines": [{"sku": sku, "quantity": quantity}]},
            headers={"Idempotency-Key": uid("rma")},
        )
    assert response.status_code == 201, response.text
    rma: dict[str, Any] = response.json()
    return rma


def test_the_returns_list_by_orders_status_and_customer(full_stack: Stack, warehouse: str) -> None:
    stack = full_stack
    mine, theirs = new_customer(stack), new_customer(stack)
    order, sku = shipped(stack, warehouse, mine)
    other_order, other_sku = shipped(stack, warehouse, theirs)
    first = authorised(stack, order, sku, 1)
    second = authorised(stack, order, sku, 1)
    other = authorised(stack, other_order, other_sku, 1)
    with stack.client("order_to_ship", "orders:admin") as staff:
        rejected = staff.post(f"/orders/v1/returns/{second['rma_id']}/reject", json={})
    assert rejected.status_code == 200, rejected.text

    both = [("order_id", order), ("order_id", other_order)]
    listed = get(stack, "/orders/v1/returns", [*both, ("count", "true")])
    assert ids(listed, "rma_id") == sorted([first["rma_id"], second["rma_id"], other["rma_id"]])
    assert listed["total_count"] == 3
    assert listed["items"][0]["lines"][0]["sku"] in (sku, other_sku)
    open_ones = get(stack, "/orders/v1/returns", [*both, ("status", "authorized")])
    assert ids(open_ones, "rma_id") == sorted([first["rma_id"], other["rma_id"]])
    assert ids(get(stack, "/orders/v1/returns", {"customer_id": mine}), "rma_id") == sorted(
        [first["rma_id"], second["rma_id"]]
    )
    paged = get(stack, "/orders/v1/returns", [*both, ("limit", "2")])
    rest = get(stack, "/orders/v1/returns", [*both, ("cursor", paged["next_cursor"])])
    assert ids(paged, "rma_id") + ids(rest, "rma_id") == ids(listed, "rma_id")

    # A bound client: its own customer's RMAs only, whatever it names.
    own = get(stack, "/orders/v1/returns", [*both, ("count", "true")], bound=theirs)
    assert (ids(own, "rma_id"), own["total_count"]) == ([other["rma_id"]], 1)
    assert get(stack, "/orders/v1/returns", {"customer_id": mine}, bound=theirs)["items"] == []
    assert get(stack, "/orders/v1/returns", {"order_id": order}, bound=theirs)["items"] == []


def test_the_customer_account_from_the_erp(full_stack: Stack) -> None:
    stack = full_stack
    customer = uid("CUST")
    ship_to: dict[str, Any] = {
        "ship_to_id": "DOCK-1",
        "name": "Main dock",
        "region": "EU-WEST",
        "address": {"line1": "1 Quay", "city": "Dublin", "postal_code": "D01", "country": "IE"},
    }
    with stack.client("erp", "erp:write erp:read") as erp:
        created = erp.post(
            "/erp/v1/customers",
            json={
                "customer_id": customer,
                "name": "Harbour Supplies",
                "credit_limit": {"amount_minor": 500_000, "currency": "EUR"},
                "customer_group": "wholesale",
                "payment_terms": "net60",
                "ship_tos": [ship_to],
            },
        )
        assert created.status_code == 201, created.text
        credit = erp.get(f"/erp/v1/customers/{customer}/credit").json()
    account = get(stack, f"/orders/v1/customers/{customer}/account")
    assert account == {
        "customer_id": customer,
        "name": "Harbour Supplies",
        "status": "active",
        "customer_group": "wholesale",
        "payment_terms": "net60",
        "currency": "EUR",
        "credit_limit": {"amount_minor": 500_000, "currency": "EUR"},
        "exposure": credit["exposure"],
        "available": credit["available"],
        "ship_tos": [{**ship_to, "address": {**ship_to["address"], "line2": None}}],
    }
    assert get(stack, f"/orders/v1/customers/{customer}/account", bound=customer) == account

    other = new_customer(stack)
    theirs = get(stack, f"/orders/v1/customers/{customer}/account", bound=other, status=404)
    unknown = uid("CUST-NONE")
    nobody = get(stack, f"/orders/v1/customers/{unknown}/account", bound=other, status=404)
    assert theirs["type"] == nobody["type"] == "/problems/customer-not-found"
    assert get(stack, f"/orders/v1/customers/{unknown}/account", status=404)["status"] == 404


def set_price(stack: Stack, customer: str, sku: str, amount: int) -> None:
    with stack.client("erp", "erp:write") as erp:
        response = erp.put(
            f"/erp/v1/customers/{customer}/prices/{sku}",
            json={"unit_price": {"amount_minor": amount, "currency": "USD"}},
        )
    assert response.status_code == 200, response.text


def test_the_catalog_answers_the_customers_price(full_stack: Stack) -> None:
    stack = full_stack
    special, plain = new_customer(stack), new_customer(stack)
    sku = new_item(stack, price=1250)
    other_sku = new_item(stack, price=400)
    set_price(stack, special, sku, 999)
    list_price = {"amount_minor": 1250, "currency": "USD"}
    own_price = {"amount_minor": 999, "currency": "USD"}
    path = f"/orders/v1/catalog/items/{sku}"

    item = get(stack, path, {"customer_id": special})
    assert item == {
        "sku": sku,
        "name": f"Item {sku}",
        "base_uom": "EA",
        "tax_class": "standard",
        "list_price": list_price,
        "price": own_price,
        "price_source": "customer",
    }
    assert get(stack, path, {"customer_id": plain})["price"] == list_price
    assert get(stack, path)["price"] == list_price  # staff without a customer: list
    # A bound client always gets its own customer's price.
    assert get(stack, path, bound=special)["price"] == own_price
    assert get(stack, path, bound=plain)["price"] == list_price
    assert get(stack, path, {"customer_id": special}, bound=special)["price"] == own_price
    refused = get(stack, path, {"customer_id": special}, bound=plain, status=403)
    assert refused["type"] == "/problems/customer-not-permitted"
    get(stack, f"/orders/v1/catalog/items/{uid('SKU-NONE')}", status=404)
    get(stack, path, {"customer_id": uid("CUST-NONE")}, status=404)

    # The list, searched (case-insensitive, sku or name), paged by sku.
    both = sorted([sku, other_sku])
    found: list[dict[str, Any]] = []
    cursor = None
    for _ in range(10):
        params = {"search": "item sku-", "limit": "500", **({"cursor": cursor} if cursor else {})}
        page = get(stack, "/orders/v1/catalog/items", params, bound=special)
        found += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    mine = {i["sku"]: i for i in found if i["sku"] in both}
    assert sorted(mine) == both
    assert mine[sku]["price"] == own_price
    assert mine[other_sku]["price"] == mine[other_sku]["list_price"]
    one = get(stack, "/orders/v1/catalog/items", {"search": sku.lower(), "limit": "1"})
    assert [i["sku"] for i in one["items"]] == [sku] and one["next_cursor"] is None
    assert get(stack, "/orders/v1/catalog/items", {"search": uid("nothing")})["items"] == []
    first = get(stack, "/orders/v1/catalog/items", {"search": "ITEM SKU-", "limit": "1"})
    second = get(
        stack,
        "/orders/v1/catalog/items",
        {"search": "ITEM SKU-", "limit": "1", "cursor": first["next_cursor"]},
    )
    assert first["items"][0]["sku"] < second["items"][0]["sku"]


@pytest.mark.parametrize("search", ["%", "_", "50%_off"])
def test_the_erp_search_takes_like_wildcards_literally(stack: Stack, search: str) -> None:
    with stack.client("erp", "erp:read") as erp:
        response: httpx.Response = erp.get("/erp/v1/items", params={"search": search})
    assert response.status_code == 200, response.text
    assert all(search.lower() in (i["sku"] + i["name"]).lower() for i in response.json()["items"])
