"""A client bound to one customer reaches that customer only, however the query is
shaped: viewer, customer(id), order(id), orders(customerId), nested fields and every
mutation. Staff (`portal:staff`, bound to no customer) reaches any customer through
customer(id), and has no viewer. Over a real stack."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.orders.helpers import uid
from tests.portal.live import CHANNEL, CUSTOMER_SCOPES, Account, Live, new_account
from tests.support.stack import Stack

pytestmark = pytest.mark.slow

CUSTOMER = """query($id: ID!) { customer(id: $id) { id name
  orders(first: 10) { totalCount edges { node { id invoices { id payments { paymentId } }
  returns { id } } } }
  invoices(first: 10) { edges { node { id } } } creditNotes(first: 10) { edges { node { id } } }
  returns(first: 10) { edges { node { id } } } statement { entries { documentId } } } }"""
VIEWER = CUSTOMER.replace("query($id: ID!) { customer(id: $id)", "{ viewer")


@pytest.fixture(scope="module")
def two(live_stack: Stack, live_warehouse: str) -> tuple[Account, Account, str]:
    a = new_account(live_stack, live_warehouse, 3)
    b = new_account(live_stack, live_warehouse, 2, shipped=1)
    with live_stack.client("availability", "admin") as availability:
        held = availability.post(
            "/availability/v1/holds",
            json={
                "customer_id": a.customer_id,
                "channel": CHANNEL,
                "lines": [{"sku": a.sku, "quantity": 1}],
                "ttl_seconds": 3600,
            },
            headers={"Idempotency-Key": uid("hold")},
        )
    assert held.status_code == 201, held.text
    return a, b, str(held.json()["hold_id"])


def _ids_of(a: Account, hold_id: str) -> list[str]:
    return [
        a.customer_id,
        *a.order_ids,
        *a.invoice_ids,
        a.payment_id,
        a.rma_id,
        hold_id,
    ]


def _leaks(answer: dict[str, Any], a: Account, hold_id: str) -> list[str]:
    text = json.dumps(answer)
    return [i for i in _ids_of(a, hold_id) if i in text]


async def test_the_viewer_is_the_bound_customer_with_its_own_documents(
    live: Live, two: tuple[Account, Account, str]
) -> None:
    a, b, hold_id = two
    data = await live.data(live.token(b.customer_id), VIEWER)

    viewer = data["viewer"]
    assert viewer["id"] == b.customer_id
    assert {e["node"]["id"] for e in viewer["orders"]["edges"]} == set(b.order_ids)
    assert viewer["orders"]["totalCount"] == len(b.order_ids)
    assert {e["node"]["id"] for e in viewer["invoices"]["edges"]} == set(b.invoice_ids)
    assert not _leaks(data, a, hold_id)


async def test_another_customer_through_customer_id_is_null_like_an_unknown_one(
    live: Live, two: tuple[Account, Account, str]
) -> None:
    a, b, _hold_id = two
    theirs = await live.ask(live.token(b.customer_id), CUSTOMER, {"id": a.customer_id})
    unknown = await live.ask(live.token(b.customer_id), CUSTOMER, {"id": "CUST-NOPE"})

    assert theirs == unknown == {"data": {"customer": None}}
    own = await live.data(live.token(b.customer_id), CUSTOMER, {"id": b.customer_id})
    assert own["customer"]["id"] == b.customer_id  # its own, as the viewer


async def test_another_customers_orders_are_unreachable_by_id_or_by_list(
    live: Live, two: tuple[Account, Account, str]
) -> None:
    a, b, _hold_id = two
    query = """query($id: ID!, $c: String) {
      order(id: $id) { id invoices { id } returns { id } statusHistory { to } }
      orders(customerId: $c, first: 100) { items { id } nextCursor } }"""
    answer = await live.ask(
        live.token(b.customer_id), query, {"id": a.shipped_order_ids[0], "c": a.customer_id}
    )

    assert answer == {"data": {"order": None, "orders": {"items": [], "nextCursor": None}}}


async def test_mutations_on_another_customers_objects_are_not_found_and_change_nothing(
    live: Live, two: tuple[Account, Account, str]
) -> None:
    a, b, hold_id = two
    token = live.token(b.customer_id)
    mutation = """mutation($o: ID!, $s: ID!, $h: ID!, $c: ID!, $sku: String!) {
      cancel: cancelOrder(orderId: $o, idempotencyKey: "iso-1") { __typename }
      cancelLines: cancelOrder(orderId: $o, lines: [{sku: $sku, quantity: 1}],
                               idempotencyKey: "iso-2") { __typename }
      ret: requestReturn(orderId: $s, lines: [{sku: $sku, quantity: 1}],
                         idempotencyKey: "iso-3") { __typename }
      release: releaseCartHold(holdId: $h, idempotencyKey: "iso-4") { __typename }
      fromHold: placeOrderFromHold(holdId: $h, idempotencyKey: "iso-5") { __typename }
      place: placeOrder(input: {customerId: $c, channel: "b2b_portal",
                                lines: [{sku: $sku, quantity: 1}]},
                        idempotencyKey: "iso-6") { __typename }
    }"""
    variables = {
        "o": a.order_ids[-1],
        "s": a.shipped_order_ids[0],
        "h": hold_id,
        "c": a.customer_id,
        "sku": a.sku,
    }
    data = await live.data(token, mutation, variables)

    assert {v["__typename"] for v in data.values()} == {"NotFound"}, data
    with live.stack.client("order_to_ship", "admin") as orders:
        open_order = orders.get(f"/orders/v1/orders/{a.order_ids[-1]}").json()
        listed = orders.get("/orders/v1/orders", params={"customer_id": a.customer_id}).json()
        rmas = orders.get(f"/orders/v1/orders/{a.shipped_order_ids[0]}/returns").json()
    with live.stack.client("availability", "admin") as availability:
        hold = availability.get(f"/availability/v1/holds/{hold_id}").json()
    assert open_order["status"] != "cancelled"
    assert open_order["lines"][0]["cancelled"] == 0
    assert len(listed["items"]) == len(a.order_ids)
    assert [r["rma_id"] for r in rmas["items"]] == [a.rma_id]
    assert hold["status"] == "active"


async def test_staff_reaches_any_customer_through_customer_id_and_has_no_viewer(
    live: Live, two: tuple[Account, Account, str]
) -> None:
    a, b, _hold_id = two
    staff = live.staff()

    data = await live.data(staff, CUSTOMER, {"id": a.customer_id})
    assert data["customer"]["id"] == a.customer_id
    assert {e["node"]["id"] for e in data["customer"]["orders"]["edges"]} == set(a.order_ids)
    assert (await live.data(staff, "{ viewer { id } }")) == {"viewer": None}
    other = await live.data(staff, CUSTOMER, {"id": b.customer_id})
    assert other["customer"]["id"] == b.customer_id


async def test_an_unbound_client_without_the_staff_scope_reaches_no_customer(
    live: Live, two: tuple[Account, Account, str]
) -> None:
    a, _, _ = two
    token = live.token(None, CUSTOMER_SCOPES)
    query = """query($id: ID!, $c: String, $o: ID!) { customer(id: $id) { id }
      order(id: $o) { id } viewer { id } orders(customerId: $c) { items { id } } }"""
    answer = await live.ask(
        token, query, {"id": a.customer_id, "c": a.customer_id, "o": a.order_ids[0]}
    )

    assert answer == {
        "data": {"customer": None, "order": None, "viewer": None, "orders": {"items": []}}
    }
    assert live.calls.seen == []  # decided before any call
