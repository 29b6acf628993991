"""Object-level authorization (ADR 0014): a client bound to customer A reads and
changes only A's orders, invoices and shipments, through the gateway and straight at
each service's port alike (every service applies the rule itself). Another customer's
object answers exactly like one that does not exist, and a refused change changes
nothing."""

from __future__ import annotations

import subprocess
from typing import Any

import httpx
import pytest

from tests.security.helpers import World, atp, bearer, place, register_client
from tests.security.test_direct_service_tokens import Forger
from tests.support.platform import PlatformClient
from tests.support.problems import assert_problem

ROUTES = {"orders": "order_to_ship", "billing": "billing", "graphql": "portal"}


def _base(platform: PlatformClient, via: str, api: str) -> str:
    return platform.gateway if via == "gateway" else platform.url(ROUTES[api])


def _client(platform: PlatformClient, token: str, via: str, api: str) -> httpx.Client:
    return platform.client(token, base=_base(platform, via, api))


def _same_answer(theirs: httpx.Response, unknown: httpx.Response) -> None:
    """Nothing but the id itself tells another customer's object from no object."""
    assert theirs.status_code == unknown.status_code == 404
    left, right = theirs.json(), unknown.json()
    for body in (left, right):
        for volatile in ("detail", "instance", "correlation_id"):
            body.pop(volatile, None)
    assert left == right


@pytest.mark.parametrize("via", ["gateway", "direct"])
def test_another_customers_order_is_404_and_lists_hold_only_ones_own(
    platform: PlatformClient, world: World, via: str
) -> None:
    a, b = world.a, world.b
    with _client(platform, bearer(platform, a.client), via, "orders") as orders:
        theirs = orders.get(f"/orders/v1/orders/{b.order_id}")
        assert_problem(theirs, 404, "/problems/order-not-found", correlated=False)
        assert b.customer_id not in theirs.text
        _same_answer(theirs, orders.get("/orders/v1/orders/ORD-does-not-exist"))
        assert orders.get(f"/orders/v1/orders/{a.order_id}").status_code == 200

        listed = orders.get("/orders/v1/orders", params={"limit": 200}).json()["items"]
        assert a.order_id in {order["order_id"] for order in listed}
        assert {order["customer_id"] for order in listed} == {a.customer_id}
        for other in (b.customer_id, "CUST-NOBODY"):
            named = orders.get("/orders/v1/orders", params={"customer_id": other})
            assert named.status_code == 200, named.text
            assert named.json() == {"items": [], "next_cursor": None}


@pytest.mark.parametrize("via", ["gateway", "direct"])
def test_another_customers_invoice_is_404_and_lists_hold_only_ones_own(
    platform: PlatformClient, world: World, via: str
) -> None:
    a, b = world.a, world.b
    with _client(platform, bearer(platform, a.client), via, "billing") as billing:
        theirs = billing.get(f"/billing/v1/invoices/{b.invoice_id}")
        assert_problem(theirs, 404, "/problems/invoice-not-found", correlated=False)
        _same_answer(theirs, billing.get("/billing/v1/invoices/INV-does-not-exist"))
        assert billing.get(f"/billing/v1/invoices/{a.invoice_id}").status_code == 200

        for params in (
            {"order_id": b.order_id},
            {"customer_id": b.customer_id},
            {"order_id": b.order_id, "customer_id": b.customer_id},
        ):
            named = billing.get("/billing/v1/invoices", params=params)
            assert named.status_code == 200, named.text
            assert named.json() == {"items": [], "next_cursor": None}
        listed = billing.get("/billing/v1/invoices", params={"limit": 200}).json()["items"]
        assert a.invoice_id in {invoice["invoice_id"] for invoice in listed}
        assert {invoice["customer_id"] for invoice in listed} == {a.customer_id}


ORDER = "query($id: ID!) { order(id: $id) { id customerId shipments { trackingNumber } invoices { id } } }"
ORDERS = """query($customerId: String) {
  orders(customerId: $customerId, first: 100) { items { id customerId invoices { id } } nextCursor }
}"""


def _graphql(api: httpx.Client, query: str, **variables: Any) -> dict[str, Any]:
    response = api.post("/graphql", json={"query": query, "variables": variables})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    # Every answer reports its cost (decision 0037); what a test compares is the data.
    assert "cost" in body.pop("extensions", {}), body
    return body


@pytest.mark.parametrize("via", ["gateway", "direct"])
def test_graphql_hides_another_customers_order_and_filters_lists(
    platform: PlatformClient, world: World, via: str
) -> None:
    a, b = world.a, world.b
    with _client(platform, bearer(platform, a.client), via, "graphql") as portal:
        theirs = _graphql(portal, ORDER, id=b.order_id)
        unknown = _graphql(portal, ORDER, id="ORD-does-not-exist")
        assert theirs == unknown == {"data": {"order": None}}

        own = _graphql(portal, ORDER, id=a.order_id)
        assert "errors" not in own, own
        assert own["data"]["order"]["customerId"] == a.customer_id
        assert own["data"]["order"]["shipments"], "the own order's shipment is visible"
        assert own["data"]["order"]["invoices"] == [{"id": a.invoice_id}]

        listed = _graphql(portal, ORDERS)
        assert "errors" not in listed, listed
        items = listed["data"]["orders"]["items"]
        assert a.order_id in {order["id"] for order in items}
        assert {order["customerId"] for order in items} == {a.customer_id}
        invoices = {invoice["id"] for order in items for invoice in order["invoices"]}
        assert b.invoice_id not in invoices
        named = _graphql(portal, ORDERS, customerId=b.customer_id)
        assert named == {"data": {"orders": {"items": [], "nextCursor": None}}}


@pytest.mark.parametrize("via", ["gateway", "direct"])
def test_cancelling_another_customers_order_is_404_and_changes_nothing(
    platform: PlatformClient, world: World, admin: httpx.Client, via: str
) -> None:
    a, b = world.a, world.b
    order_id = place(admin, b.customer_id, world.sku, quantity=1)
    before = admin.get(f"/orders/v1/orders/{order_id}").json()
    stock_before = atp(admin, world.sku)

    with _client(platform, bearer(platform, a.client), via, "orders") as orders:
        refused = orders.post(f"/orders/v1/orders/{order_id}/cancel")
        assert_problem(refused, 404, "/problems/order-not-found", correlated=False)
        _same_answer(refused, orders.post("/orders/v1/orders/ORD-does-not-exist/cancel"))

    assert admin.get(f"/orders/v1/orders/{order_id}").json() == before
    assert atp(admin, world.sku) == stock_before
    # The owner may cancel it: the 404 was the binding, not the order's state.
    with _client(platform, bearer(platform, b.client), via, "orders") as owner:
        cancelled = owner.post(f"/orders/v1/orders/{order_id}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled"


@pytest.mark.parametrize("via", ["gateway", "direct"])
def test_placing_an_order_for_another_customer_is_403_and_changes_nothing(
    platform: PlatformClient, world: World, admin: httpx.Client, via: str
) -> None:
    a, b = world.a, world.b
    orders_of_b = admin.get("/orders/v1/orders", params={"customer_id": b.customer_id}).json()
    stock_before = atp(admin, world.sku)
    with _client(platform, bearer(platform, a.client), via, "orders") as orders:
        answers = []
        for target in (b.customer_id, "CUST-NOBODY"):
            body = {
                "customer_id": target,
                "channel": "b2b_portal",
                "lines": [{"sku": world.sku, "quantity": 1}],
            }
            refused = orders.post(
                "/orders/v1/orders", json=body, headers={"Idempotency-Key": f"x-{target}-{via}"}
            )
            assert_problem(refused, 403, "/problems/customer-not-permitted", correlated=False)
            answers.append(refused.json()["detail"])
        assert answers[0] == answers[1]  # whether the other customer exists stays unknown

    after = admin.get("/orders/v1/orders", params={"customer_id": b.customer_id}).json()
    assert after == orders_of_b
    assert (
        admin.get("/orders/v1/orders", params={"customer_id": "CUST-NOBODY"}).json()["items"] == []
    )
    assert atp(admin, world.sku) == stock_before


@pytest.mark.parametrize("via", ["gateway", "direct"])
def test_system_apis_refuse_a_bound_client_whatever_its_scopes(
    platform: PlatformClient, world: World, via: str
) -> None:
    """The WMS knows no customers, so shipments and fulfillment orders are read through
    the orders API. The registry will not make a bound client with wms scopes, and a
    token that claims both anyway (signed with the gateway's real key) is refused by
    the WMS itself for every id alike."""
    a, b = world.a, world.b
    with pytest.raises(subprocess.CalledProcessError) as refused_client:
        register_client(platform, "wms:read wms:write", customer=a.customer_id)
    assert "system APIs" in refused_client.value.stderr + refused_client.value.stdout
    forger = Forger(platform)
    token = forger.signed(
        forger.claims(scope="wms:read wms:write", customer_id=a.customer_id, aud=["wms"])
    )
    base = platform.gateway if via == "gateway" else platform.url("wms")
    with platform.client(token, base=base) as wms:
        for path, params in (
            ("/wms/v1/fulfillment-orders", {"order_id": a.order_id}),
            ("/wms/v1/fulfillment-orders", {"order_id": b.order_id}),
            (f"/wms/v1/fulfillment-orders/{a.fulfillment_order_id}", {}),
            (f"/wms/v1/fulfillment-orders/{b.fulfillment_order_id}", {}),
            ("/wms/v1/fulfillment-orders/FO-does-not-exist", {}),
            (f"/wms/v1/fulfillment-orders/{b.fulfillment_order_id}/shipments", {}),
        ):
            assert_problem(
                wms.get(path, params=params), 403, "/problems/internal-api", correlated=False
            )
        refused = wms.post(f"/wms/v1/fulfillment-orders/{b.fulfillment_order_id}/cancel")
        assert_problem(refused, 403, "/problems/internal-api", correlated=False)
