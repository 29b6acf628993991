"""DataLoaders batch every downstream call: the portal's calls to the process APIs for
the viewer's orders with their lines, shipments, invoices and returns are as many for
5 orders as for 50 (counted by the portal's call observer, over a real stack)."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.portal.live import Account, Live, new_account
from tests.support.stack import Stack

pytestmark = pytest.mark.slow  # a real stack, 55 orders

QUERY = """{ viewer { orders(first: 50) { totalCount edges { node {
  id lines { sku } shipments { carrier } invoices { status } returns { status } } } } } }"""
# Everything nested an order has: history, invoices with payments and credit notes.
DEEP = """{ viewer { name orders(first: 50) { edges { node {
  id statusHistory { to } lines { sku shipped } shipments { carrier trackingNumber }
  invoices { status payments { paymentId } creditNotes { id } } returns { status } } } } } }"""


@pytest.fixture(scope="module")
def accounts(live_stack: Stack, live_warehouse: str) -> tuple[Account, Account]:
    return new_account(live_stack, live_warehouse, 5), new_account(live_stack, live_warehouse, 50)


async def _count(live: Live, account: Account, query: str) -> Counter[tuple[str, str, str]]:
    live.calls.clear()
    data = await live.data(live.token(account.customer_id), query)
    edges = data["viewer"]["orders"]["edges"]
    assert len(edges) == len(account.order_ids)
    assert {e["node"]["id"] for e in edges} == set(account.order_ids)
    return Counter(live.calls.seen)


async def test_the_viewers_orders_cost_the_same_calls_for_5_and_50_orders(
    live: Live, accounts: tuple[Account, Account]
) -> None:
    five, fifty = accounts

    few = await _count(live, five, QUERY)
    many = await _count(live, fifty, QUERY)

    assert sum(few.values()) == sum(many.values()), (few, many)
    # One order page, invoices, returns; no account field is asked, so no account read.
    assert sum(many.values()) == 3
    assert {path for _, _, path in many} == {
        "/orders/v1/orders",
        "/billing/v1/invoices",
        "/orders/v1/returns",
    }


async def test_everything_nested_still_costs_one_call_per_kind(
    live: Live, accounts: tuple[Account, Account]
) -> None:
    five, fifty = accounts

    few = await _count(live, five, DEEP)
    many = await _count(live, fifty, DEEP)

    assert sum(few.values()) == sum(many.values()) == 7, (few, many)
    assert all(n == 1 for n in many.values()), many


async def test_the_nested_data_is_the_orders_own(
    live: Live, accounts: tuple[Account, Account]
) -> None:
    five, _ = accounts
    data = await live.data(live.token(five.customer_id), DEEP)
    nodes = {e["node"]["id"]: e["node"] for e in data["viewer"]["orders"]["edges"]}

    shipped = nodes[five.shipped_order_ids[0]]
    assert shipped["lines"] == [{"sku": five.sku, "shipped": 2}]
    assert shipped["shipments"][0]["carrier"] == "UPS"
    (invoice,) = shipped["invoices"]
    assert invoice["payments"] == [{"paymentId": five.payment_id}]
    assert [r["status"] for r in shipped["returns"]] == ["authorized"]
    assert [h["to"] for h in shipped["statusHistory"]][-1] == "shipped"
    open_order = nodes[five.order_ids[-1]]
    assert open_order["shipments"] == [] and open_order["invoices"] == []
