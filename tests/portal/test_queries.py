"""Queries through the portal against real (stand-in) process APIs over HTTP."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar.testing import AsyncTestClient

from experience_apis.portal.schema import sdl
from tests.portal.helpers import answer, graphql
from tests.portal.upstreams import UpstreamState

ORDER_QUERY = """
query Order($id: ID!) {
  order(id: $id) {
    id status customerId channel currency createdAt
    lines { sku quantity allocated backordered shipped unitPrice { amountMinor currency } }
    shipments { shipmentId carrier trackingNumber shippedAt lines { sku quantity } }
    invoices {
      id orderId shipmentId status issuedAt
      total { amountMinor currency }
      lines { sku quantity unitPrice { amountMinor currency } amount { amountMinor currency } }
    }
  }
}
"""


async def test_order_with_lines_shipments_and_invoices(
    portal: AsyncTestClient[Any], upstreams: UpstreamState, token: Callable[..., str]
) -> None:
    response = await graphql(portal, ORDER_QUERY, token(), {"id": "O-1"})

    assert response.status_code == 200
    body = response.json()
    assert "errors" not in body
    order = body["data"]["order"]
    assert order["id"] == "O-1"
    assert order["status"] == "partially_shipped"
    assert order["customerId"] == "C1"
    assert order["channel"] == "portal"
    assert order["currency"] == "USD"
    assert order["createdAt"].startswith("2026-01-01T09:00:00")
    assert order["lines"][0] == {
        "sku": "SKU-A",
        "quantity": 5,
        "allocated": 5,
        "backordered": 0,
        "shipped": 2,
        "unitPrice": {"amountMinor": 1250, "currency": "USD"},
    }
    # Money in minor units beyond GraphQL's 32-bit Int stays exact (scalar Long).
    assert order["lines"][1]["unitPrice"] == {"amountMinor": 300_000_000_000, "currency": "USD"}
    assert order["lines"][1]["backordered"] == 2
    assert order["shipments"] == [
        {
            "shipmentId": "S-1",
            "carrier": "UPS",
            "trackingNumber": "1Z999",
            "shippedAt": order["shipments"][0]["shippedAt"],
            "lines": [{"sku": "SKU-A", "quantity": 2}],
        }
    ]
    assert order["invoices"] == [
        {
            "id": "INV-1",
            "orderId": "O-1",
            "shipmentId": "S-1",
            "status": "issued",
            "issuedAt": order["invoices"][0]["issuedAt"],
            "total": {"amountMinor": 2500, "currency": "USD"},
            "lines": [
                {
                    "sku": "SKU-A",
                    "quantity": 2,
                    "unitPrice": {"amountMinor": 1250, "currency": "USD"},
                    "amount": {"amountMinor": 2500, "currency": "USD"},
                }
            ],
        }
    ]


async def test_the_callers_token_is_what_the_process_apis_receive(
    portal: AsyncTestClient[Any], upstreams: UpstreamState, token: Callable[..., str]
) -> None:
    caller = token()
    response = await graphql(
        portal,
        '{ order(id: "O-1") { id invoices { id } } availability(skus: ["SKU-A"]) { sku } }',
        caller,
        headers={"X-Correlation-Id": "portal-test-1"},
    )

    assert response.json()["data"]["order"]["invoices"] == [{"id": "INV-1"}]
    seen = upstreams.requests_to("orders") + upstreams.requests_to("billing")
    seen += upstreams.requests_to("availability")
    assert {s.api for s in seen} == {"orders", "billing", "availability"}
    for request in seen:
        assert request.authorization == f"Bearer {caller}"
        assert request.correlation_id == "portal-test-1"
    (orders,) = upstreams.requests_to("orders")
    assert orders.path == "/orders/v1/orders"
    assert ("order_id", "O-1") in orders.query
    (availability,) = upstreams.requests_to("availability")
    assert availability.path == "/availability/v2/items"
    assert availability.query == [("sku", "SKU-A")]


async def test_two_orders_in_one_query_make_one_order_and_one_invoices_request(
    portal: AsyncTestClient[Any], upstreams: UpstreamState, token: Callable[..., str]
) -> None:
    upstreams.order_delays["O-2"] = 0.2  # the orders answer at different times
    query = """
    {
      first: order(id: "O-1") { id invoices { id total { amountMinor } } }
      second: order(id: "O-2") { id invoices { id } }
    }
    """
    response = await graphql(portal, query, token())

    data = response.json()["data"]
    assert data["first"]["invoices"] == [{"id": "INV-1", "total": {"amountMinor": 2500}}]
    assert data["second"]["invoices"] == [{"id": "INV-2"}]
    (orders,) = upstreams.requests_to("orders")  # one batch read by ids
    assert sorted(v for k, v in orders.query if k == "order_id") == ["O-1", "O-2"]
    billing = upstreams.requests_to("billing")
    assert len(billing) == 1
    assert billing[0].path == "/billing/v1/invoices"
    assert sorted(v for k, v in billing[0].query if k == "order_id") == ["O-1", "O-2"]


async def test_the_same_order_twice_is_fetched_once(
    portal: AsyncTestClient[Any], upstreams: UpstreamState, token: Callable[..., str]
) -> None:
    query = '{ a: order(id: "O-1") { id } b: order(id: "O-1") { status invoices { id } } }'
    response = await graphql(portal, query, token())

    data = response.json()["data"]
    assert data == {
        "a": {"id": "O-1"},
        "b": {"status": "partially_shipped", "invoices": [{"id": "INV-1"}]},
    }
    assert len(upstreams.requests_to("orders")) == 1
    assert len(upstreams.requests_to("billing")) == 1


async def test_unknown_order_is_null_without_error(
    portal: AsyncTestClient[Any], upstreams: UpstreamState, token: Callable[..., str]
) -> None:
    response = await graphql(portal, ORDER_QUERY, token(), {"id": "O-404"})

    assert answer(response) == {"data": {"order": None}}
    assert upstreams.requests_to("billing") == []


async def test_another_customers_order_is_null_without_error(
    portal: AsyncTestClient[Any], upstreams: UpstreamState, token: Callable[..., str]
) -> None:
    # The order exists, but the order API hides it from a client bound to C1.
    response = await graphql(portal, ORDER_QUERY, token(customer_id="C1"), {"id": "O-9"})

    assert answer(response) == {"data": {"order": None}}
    assert len(upstreams.requests_to("orders")) == 1


async def test_malformed_order_id_names_no_order_and_is_never_sent(
    portal: AsyncTestClient[Any], upstreams: UpstreamState, token: Callable[..., str]
) -> None:
    response = await graphql(portal, '{ order(id: "../erp") { id } }', token())

    assert answer(response) == {"data": {"order": None}}
    assert upstreams.requests_to("orders") == []


async def test_availability(
    portal: AsyncTestClient[Any], upstreams: UpstreamState, token: Callable[..., str]
) -> None:
    query = """
    query Atp($skus: [ID!]!) {
      availability(skus: $skus, perLocation: true) {
        sku availableToPromise asOf
        locations { locationId onHand allocated availableToPromise }
      }
    }
    """
    response = await graphql(portal, query, token(), {"skus": ["SKU-A", "SKU-Z", "SKU-A"]})

    body = response.json()
    assert "errors" not in body
    atp, unknown = body["data"]["availability"]  # in the order asked, each once
    assert unknown["sku"] == "SKU-Z"
    assert unknown["availableToPromise"] == 0
    (call,) = upstreams.requests_to("availability")  # one batched call
    assert call.query == [("sku", "SKU-A"), ("sku", "SKU-Z")]
    assert atp["sku"] == "SKU-A"
    assert atp["availableToPromise"] == 7
    assert atp["asOf"].startswith("2026-01-05T12:00:00")
    assert atp["locations"] == [
        {"locationId": "WH-EAST", "onHand": 10, "allocated": 4, "availableToPromise": 5},
        {"locationId": "WH-WEST", "onHand": 2, "allocated": 0, "availableToPromise": 2},
    ]


def test_sdl_is_the_contract_shape() -> None:
    text = sdl()
    assert "order(id: ID!): Order" in text
    assert (
        "availability(skus: [ID!]!, channel: String = null, perLocation: Boolean! = false): "
        "[ItemAvailability!]!"
    ) in text
    for field in ("trackingNumber: String!", "amountMinor: Long!", "availableToPromise: Int!"):
        assert field in text
    assert "type Subscription {" in text  # live updates (decision 0038)
    assert "placeOrder(input: PlaceOrderInput!, idempotencyKey: String!): PlaceOrderResult!" in (
        text
    )


async def test_too_many_aliases_are_refused_before_any_call(
    portal: AsyncTestClient[Any], upstreams: UpstreamState, token: Callable[..., str]
) -> None:
    fields = " ".join(f'o{i}: order(id: "O-{i}") {{ id }}' for i in range(31))
    response = await graphql(portal, "{ " + fields + " }", token())

    body = response.json()
    assert body["data"] is None
    assert "aliases" in body["errors"][0]["message"]
    assert upstreams.seen == []
