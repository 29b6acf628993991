"""The viewer's account, its connections (paging, filters, totalCount), billing's
documents and statement, availability in one batched call and the catalog with the
customer's price: over a real stack."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.orders.helpers import new_item
from tests.portal.live import Account, Live, new_account
from tests.support.stack import Stack

pytestmark = pytest.mark.slow

ACCOUNT = """{ viewer { id name status currency paymentTerms creditLimit { amountMinor currency }
  exposure { amountMinor } availableCredit { amountMinor } shipTos { id name }
  openBalance { amountMinor currency } overdueAmount { amountMinor }
  unappliedCredit { amountMinor } } }"""
PAGE = """query($first: Int!, $after: String, $filter: OrderFilterInput) {
  viewer { orders(first: $first, after: $after, filter: $filter) {
    totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id status } } } } }"""
DOCUMENTS = """{ viewer {
  invoices(first: 10) { totalCount edges { node { id orderId status subtotal { amountMinor }
    tax { amountMinor } total { amountMinor } paid { amountMinor } outstanding { amountMinor }
    dueDate overdue } } }
  creditNotes(first: 10) { edges { node { id invoiceId reason total { amountMinor } } } }
  returns(first: 10) { totalCount edges { node { id orderId status lines { sku authorized } } } }
  statement { currency balance { amountMinor } entries { kind documentId }
    openInvoices { invoiceId } } } }"""


@pytest.fixture(scope="module")
def account(live_stack: Stack, live_warehouse: str) -> Account:
    return new_account(live_stack, live_warehouse, 5)


async def test_the_viewers_account_and_balance(live: Live, account: Account) -> None:
    viewer = (await live.data(live.token(account.customer_id), ACCOUNT))["viewer"]

    assert viewer["id"] == account.customer_id
    assert viewer["name"] == f"Customer {account.customer_id}"
    assert viewer["status"] == "active"
    assert viewer["creditLimit"]["currency"] == "USD"
    assert viewer["openBalance"]["amountMinor"] > 0  # two invoices, a part paid
    assert viewer["overdueAmount"] == {"amountMinor": 0}


async def test_orders_page_with_cursors_and_total_count(live: Live, account: Account) -> None:
    token = live.token(account.customer_id)

    first = (await live.data(token, PAGE, {"first": 2}))["viewer"]["orders"]
    assert first["totalCount"] == 5
    assert first["pageInfo"]["hasNextPage"] is True
    assert first["edges"][-1]["cursor"] == first["pageInfo"]["endCursor"]
    seen = [e["node"]["id"] for e in first["edges"]]
    after = first["pageInfo"]["endCursor"]
    while after:
        page = (await live.data(token, PAGE, {"first": 2, "after": after}))["viewer"]["orders"]
        seen += [e["node"]["id"] for e in page["edges"]]
        after = page["pageInfo"]["endCursor"]
    assert sorted(seen) == sorted(account.order_ids)
    assert len(seen) == len(set(seen))


async def test_every_edge_has_a_cursor_to_resume_after_it(live: Live, account: Account) -> None:
    token = live.token(account.customer_id)
    every = (await live.data(token, PAGE, {"first": 5}))["viewer"]["orders"]
    ids = [e["node"]["id"] for e in every["edges"]]
    cursors = [e["cursor"] for e in every["edges"]]
    assert len(ids) == 5 and all(cursors) and len(set(cursors)) == 5
    assert every["pageInfo"] == {"hasNextPage": False, "endCursor": cursors[-1]}

    for i, cursor in enumerate(cursors):
        rest = (await live.data(token, PAGE, {"first": 2, "after": cursor}))["viewer"]["orders"]
        assert [e["node"]["id"] for e in rest["edges"]] == ids[i + 1 : i + 3]
        assert rest["pageInfo"]["hasNextPage"] is (i + 3 < len(ids))
        assert rest["totalCount"] == 5
    # An endCursor of an earlier release (the process API's own cursor) still resumes.
    with live.stack.client("order_to_ship", "admin") as orders:
        params = {"customer_id": account.customer_id, "limit": 2}
        old = orders.get("/orders/v1/orders", params=params).json()["next_cursor"]
    resumed = (await live.data(token, PAGE, {"first": 2, "after": old}))["viewer"]["orders"]
    assert [e["node"]["id"] for e in resumed["edges"]] == ids[2:4]


async def test_orders_filtered_by_status_sku_and_channel(live: Live, account: Account) -> None:
    token = live.token(account.customer_id)

    async def ids(filter: dict[str, object]) -> set[str]:
        page = (await live.data(token, PAGE, {"first": 20, "filter": filter}))["viewer"]["orders"]
        assert page["totalCount"] == len(page["edges"])
        return {e["node"]["id"] for e in page["edges"]}

    assert await ids({"status": ["shipped"]}) == set(account.shipped_order_ids)
    assert await ids({"sku": account.sku, "channel": "b2b_portal"}) == set(account.order_ids)
    assert await ids({"sku": new_item(live.stack)}) == set()
    assert (
        await ids({"placedFrom": "2000-01-01T00:00:00Z", "placedTo": "2001-01-01T00:00:00Z"})
        == set()
    )


async def test_invoices_credit_notes_returns_and_statement(live: Live, account: Account) -> None:
    viewer = (await live.data(live.token(account.customer_id), DOCUMENTS))["viewer"]

    invoices = [e["node"] for e in viewer["invoices"]["edges"]]
    assert {i["id"] for i in invoices} == set(account.invoice_ids)
    for invoice in invoices:
        assert invoice["total"]["amountMinor"] == (
            invoice["subtotal"]["amountMinor"] + invoice["tax"]["amountMinor"]
        )
    paid = {i["id"]: i["paid"]["amountMinor"] for i in invoices}
    assert paid[account.invoice_ids[0]] == 100
    (rma,) = [e["node"] for e in viewer["returns"]["edges"]]
    assert rma["id"] == account.rma_id
    assert rma["lines"] == [{"sku": account.sku, "authorized": 1}]
    assert viewer["creditNotes"]["edges"] == []
    statement = viewer["statement"]
    assert statement["currency"] == "USD"
    kinds = Counter(e["kind"] for e in statement["entries"])
    assert kinds == {"invoice": 2, "payment": 1}


async def test_availability_of_many_skus_in_one_call(
    live: Live, account: Account, live_warehouse: str
) -> None:
    query = """query($skus: [ID!]!) { availability(skus: $skus, perLocation: true) {
      sku availableToPromise asOf locations { locationId availableToPromise onHand } } }"""
    other = new_item(live.stack)
    live.calls.clear()

    answer = await live.data(
        live.token(account.customer_id), query, {"skus": [account.sku, other, "../bad"]}
    )

    found = answer["availability"]
    assert [f["sku"] for f in found] == [account.sku, other]
    assert found[0]["availableToPromise"] > 0
    assert found[0]["locations"][0]["locationId"] == live_warehouse
    assert found[1]["availableToPromise"] == 0
    assert live.calls.seen == [("availability", "GET", "/availability/v2/items")]
    plain = await live.data(
        live.token(account.customer_id),
        "query($s: [ID!]!) { availability(skus: $s) { locations { locationId } } }",
        {"s": [account.sku]},
    )
    assert plain["availability"] == [{"locations": None}]


async def test_catalog_items_with_the_customers_price(live: Live, account: Account) -> None:
    with live.stack.client("erp", "erp:write") as erp:
        priced = erp.put(
            f"/erp/v1/customers/{account.customer_id}/prices/{account.sku}",
            json={"unit_price": {"amount_minor": 777, "currency": "USD"}},
        )
    assert priced.status_code == 200, priced.text
    token = live.token(account.customer_id)
    item = await live.data(
        token,
        "query($s: ID!) { item(sku: $s) { sku name listPrice { amountMinor } price { amountMinor } } }",
        {"s": account.sku},
    )
    assert item["item"] == {
        "sku": account.sku,
        "name": f"Item {account.sku}",
        "listPrice": {"amountMinor": 1000},
        "price": {"amountMinor": 777},
    }
    staff = await live.data(
        live.staff(),
        "query($s: ID!) { item(sku: $s) { price { amountMinor } } }",
        {"s": account.sku},
    )
    assert staff["item"]["price"] == {"amountMinor": 1000}  # no customer: the list price
    listed = await live.data(
        token,
        "query($q: String) { items(search: $q, first: 5) { edges { node { sku } } } }",
        {"q": account.sku.lower()},
    )
    assert [e["node"] for e in listed["items"]["edges"]] == [{"sku": account.sku}]
    unknown = await live.data(token, '{ item(sku: "SKU-NOPE") { sku } }')
    assert unknown == {"item": None}
