"""Object-level authorization through GraphQL (ADR 0014): the portal forwards the
caller's token, so a caller bound to one customer sees that customer's orders and
invoices only, and another customer's order is indistinguishable from no order."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar.testing import AsyncTestClient

from tests.portal.conftest import PORTAL_SCOPES
from tests.portal.helpers import answer, graphql
from tests.portal.upstreams import UpstreamState

ORDERS_QUERY = """
query Orders($customerId: String, $first: Int, $after: String) {
  orders(customerId: $customerId, first: $first, after: $after) {
    items { id customerId invoices { id } }
    nextCursor
  }
}
"""


async def test_a_bound_caller_lists_its_own_orders_with_their_invoices(
    portal: AsyncTestClient[Any], upstreams: UpstreamState, token: Callable[..., str]
) -> None:
    response = await graphql(portal, ORDERS_QUERY, token(customer_id="C3"))

    body = response.json()
    assert "errors" not in body, body
    assert body["data"]["orders"] == {
        "items": [
            {"id": "O-30", "customerId": "C3", "invoices": [{"id": "INV-30"}]},
            {"id": "O-31", "customerId": "C3", "invoices": []},
        ],
        "nextCursor": None,
    }
    # One order list and one batched invoice request, both with the caller's token.
    (listed,) = upstreams.requests_to("orders")
    (invoices,) = upstreams.requests_to("billing")
    assert listed.authorization == invoices.authorization
    assert listed.authorization is not None and listed.authorization.startswith("Bearer ")


async def test_naming_another_customer_lists_nothing_and_leaks_nothing(
    portal: AsyncTestClient[Any], upstreams: UpstreamState, token: Callable[..., str]
) -> None:
    for other in ("C2", "NO-SUCH-CUSTOMER"):
        response = await graphql(
            portal, ORDERS_QUERY, token(customer_id="C3"), {"customerId": other}
        )
        assert answer(response) == {"data": {"orders": {"items": [], "nextCursor": None}}}


async def test_another_customers_order_is_null_like_an_unknown_one(
    portal: AsyncTestClient[Any], upstreams: UpstreamState, token: Callable[..., str]
) -> None:
    query = "query O($id: ID!) { order(id: $id) { id invoices { id } } }"
    theirs = await graphql(portal, query, token(customer_id="C2"), {"id": "O-30"})
    unknown = await graphql(portal, query, token(customer_id="C2"), {"id": "O-404"})
    assert answer(theirs) == answer(unknown) == {"data": {"order": None}}
    assert upstreams.requests_to("billing") == []  # nothing of O-30 was fetched
    own = await graphql(portal, query, token(customer_id="C3"), {"id": "O-30"})
    assert answer(own) == {"data": {"order": {"id": "O-30", "invoices": [{"id": "INV-30"}]}}}


async def test_staff_pages_through_one_customers_orders(
    portal: AsyncTestClient[Any], upstreams: UpstreamState, token: Callable[..., str]
) -> None:
    staff = token(f"{PORTAL_SCOPES} portal:staff", customer_id=None)
    first = await graphql(portal, ORDERS_QUERY, staff, {"customerId": "C3", "first": 1})
    page = first.json()["data"]["orders"]
    assert [order["id"] for order in page["items"]] == ["O-30"]
    assert page["nextCursor"]
    second = await graphql(
        portal, ORDERS_QUERY, staff, {"customerId": "C3", "first": 1, "after": page["nextCursor"]}
    )
    assert second.json()["data"]["orders"] == {
        "items": [{"id": "O-31", "customerId": "C3", "invoices": []}],
        "nextCursor": None,
    }


async def test_page_size_is_clamped_to_one_to_a_hundred(
    portal: AsyncTestClient[Any], upstreams: UpstreamState, token: Callable[..., str]
) -> None:
    for first, sent in ((0, "1"), (-5, "1"), (101, "100"), (7, "7")):
        response = await graphql(portal, ORDERS_QUERY, token(customer_id="C3"), {"first": first})
        assert "errors" not in response.json(), response.json()
        assert ("limit", sent) in upstreams.requests_to("orders")[-1].query


async def test_a_malformed_customer_or_cursor_names_no_orders_and_calls_nothing(
    portal: AsyncTestClient[Any], upstreams: UpstreamState, token: Callable[..., str]
) -> None:
    for variables in ({"customerId": ""}, {"customerId": "../x"}, {"after": "not a cursor!"}):
        staff = token(f"{PORTAL_SCOPES} portal:staff", customer_id=None)
        response = await graphql(portal, ORDERS_QUERY, staff, variables)
        assert answer(response) == {"data": {"orders": {"items": [], "nextCursor": None}}}
    assert upstreams.requests_to("orders") == []


async def test_an_oversized_query_is_413_problem_and_calls_nothing(
    portal: AsyncTestClient[Any], upstreams: UpstreamState, token: Callable[..., str]
) -> None:
    query = '{ availability(skus: ["SKU-A"]) { sku } }' + " " * (128 * 1024)
    response = await graphql(portal, query, token())

    assert response.status_code == 413, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == 413
    assert upstreams.requests_to("availability") == []
