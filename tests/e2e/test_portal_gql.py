"""The portal as a partner's front end uses it: a real GraphQL client (``gql``, the
graphql-python client, over HTTPX) through the gateway of the real platform, with the
partner's own token (a client bound to its customer) in the Authorization header.

The client fetches the schema by introspection and validates every operation locally
before sending it, as a partner's build would. The operations are the example files
shipped beside the SDL (contracts/graphql/examples/), so every example runs end to end
here: the checkout (cart hold, order from the hold, a plain order, its idempotent
retry), the viewer's orders page with the shipment and the invoice, the order page,
availability, the catalog, the statement, a return, a cancellation."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gql import Client, GraphQLRequest
from gql.client import SyncClientSession
from gql.transport.httpx import HTTPXTransport

from tests.security.helpers import bearer, register_client
from tests.support.platform import PlatformClient
from tests.support.polling import wait_until

EXAMPLES = Path(__file__).resolve().parents[2] / "contracts" / "graphql" / "examples"
PARTNER_SCOPES = "portal orders:read orders:write inventory:read inventory:write billing:read"
PRICE = 1250
STOCK = 40


def usd(amount_minor: int) -> dict[str, Any]:
    return {"amount_minor": amount_minor, "currency": "USD"}


def key() -> str:
    return uuid.uuid4().hex


class Portal:
    """One partner's gql session, running the shipped examples by name."""

    def __init__(self, session: SyncClientSession) -> None:
        self.session = session

    def run(self, example: str, **variables: Any) -> dict[str, Any]:
        request = GraphQLRequest(
            (EXAMPLES / f"{example}.graphql").read_text(), variable_values=variables
        )
        result: dict[str, Any] = self.session.execute(request)
        return result


def atp(staff: httpx.Client, sku: str) -> int:
    return int(staff.get(f"/availability/v1/items/{sku}").json()["available_to_promise"])


@pytest.fixture(scope="module")
def tenant(platform: PlatformClient) -> dict[str, str]:
    """A customer with two stocked skus (list price PRICE), and its portal client's token."""
    tag = uuid.uuid4().hex[:8].upper()
    skus = [f"PGQ-{tag}-A", f"PGQ-{tag}-B"]
    customer_id = f"CUST-PGQ-{tag}"
    with platform.client() as staff:
        for sku in skus:
            item = {"sku": sku, "name": f"Portal item {sku}", "unit_price": usd(PRICE)}
            assert staff.post("/erp/v1/items", json=item).status_code == 201
        customer = {"customer_id": customer_id, "name": "Portal Co", "credit_limit": usd(10**9)}
        assert staff.post("/erp/v1/customers", json=customer).status_code == 201
        lines = [{"sku": sku, "quantity": STOCK} for sku in skus]
        receipt = {"warehouse_id": "WH-EAST", "lines": lines}
        received = staff.post("/wms/v1/receipts", json=receipt, headers={"Idempotency-Key": key()})
        assert received.status_code == 201, received.text
        wait_until(lambda: all(atp(staff, sku) == STOCK for sku in skus), what="the receipt")
    creds = register_client(platform, PARTNER_SCOPES, customer=customer_id)
    return {
        "customer_id": customer_id,
        "sku": skus[0],
        "other_sku": skus[1],
        "token": bearer(platform, creds),
    }


@pytest.fixture
def portal(platform: PlatformClient, tenant: dict[str, str]) -> Iterator[Portal]:
    transport = HTTPXTransport(
        url=f"{platform.gateway}/graphql",
        headers={"Authorization": f"Bearer {tenant['token']}"},
        timeout=30,
    )
    client = Client(transport=transport, fetch_schema_from_transport=True, execute_timeout=30)
    with client as session:
        yield Portal(session)


def ship_all(staff: httpx.Client, order_id: str) -> None:
    (fo,) = staff.get("/wms/v1/fulfillment-orders", params={"order_id": order_id}).json()["items"]
    shipment = {
        "carrier": "UPS",
        "tracking_number": f"1Z{uuid.uuid4().hex[:10]}",
        "lines": [{"sku": x["sku"], "quantity": x["quantity"]} for x in fo["lines"]],
    }
    path = f"/wms/v1/fulfillment-orders/{fo['fulfillment_order_id']}/shipments"
    shipped = staff.post(path, json=shipment, headers={"Idempotency-Key": key()})
    assert shipped.status_code == 201, shipped.text


def test_a_partner_places_an_order_and_reads_it_back_in_the_viewer_orders_page(
    platform: PlatformClient, tenant: dict[str, str], portal: Portal
) -> None:
    sku = tenant["sku"]
    checkout = key()
    order_input = {"channel": "b2b_portal", "lines": [{"sku": sku, "quantity": 3}]}
    placed = portal.run("place_order", idempotencyKey=checkout, input=order_input)["placeOrder"]
    assert placed["__typename"] == "OrderPlaced", placed
    order = placed["order"]
    assert [(line["sku"], line["quantity"]) for line in order["lines"]] == [(sku, 3)]
    # The same key is the same checkout: no second order.
    again = portal.run("place_order", idempotencyKey=checkout, input=order_input)["placeOrder"]
    assert again["__typename"] == "OrderPlaced" and again["order"]["id"] == order["id"]

    # Released, shipped by the warehouse, invoiced by billing: the viewer sees all of it.
    with platform.client() as staff:
        wait_until(
            lambda: staff.get(f"/orders/v1/orders/{order['id']}").json()["releases_pending"] == 0,
            what="the release",
        )
        ship_all(staff, order["id"])

    def invoiced() -> dict[str, Any] | None:
        viewer = portal.run("viewer_orders", first=50)["viewer"]
        nodes = [edge["node"] for edge in viewer["orders"]["edges"]]
        mine = [node for node in nodes if node["id"] == order["id"]]
        return mine[0] if mine and mine[0]["shipments"] and mine[0]["invoices"] else None

    node = wait_until(invoiced, timeout=60, what="the shipment and its invoice in the viewer")
    assert node["status"] == "shipped"
    [line] = node["lines"]
    assert (line["quantity"], line["shipped"]) == (3, 3)
    [shipment] = node["shipments"]
    assert shipment["carrier"] == "UPS" and shipment["trackingNumber"].startswith("1Z")
    [invoice] = node["invoices"]
    assert invoice["total"]["currency"] == "USD" and invoice["total"]["amountMinor"] >= 3 * PRICE
    assert [change["to"] for change in node["statusHistory"]][-1] == "shipped"

    viewer = portal.run("viewer_orders", first=50)["viewer"]
    assert viewer["id"] == tenant["customer_id"]
    assert viewer["orders"]["totalCount"] == len(viewer["orders"]["edges"])
    assert viewer["orders"]["pageInfo"]["hasNextPage"] is False
    filtered = portal.run("viewer_orders", first=50, filter={"status": ["cancelled"]})
    assert order["id"] not in [e["node"]["id"] for e in filtered["viewer"]["orders"]["edges"]]

    detail = portal.run("order_detail", id=order["id"])["order"]
    assert detail["id"] == order["id"] and detail["invoices"][0]["id"] == invoice["id"]

    # A return of one shipped unit is authorised; more than shipped is a typed refusal.
    asked = portal.run(
        "request_return",
        idempotencyKey=key(),
        orderId=order["id"],
        lines=[{"sku": sku, "quantity": 1}],
        reason="damaged in transit",
    )["requestReturn"]
    assert asked["__typename"] == "ReturnRequested", asked
    assert asked["return"]["lines"] == [{"sku": sku, "authorized": 1}]
    too_many = portal.run(
        "request_return",
        idempotencyKey=key(),
        orderId=order["id"],
        lines=[{"sku": sku, "quantity": 9}],
    )["requestReturn"]
    assert too_many["__typename"] == "ReturnExceedsShipped", too_many
    assert too_many["code"] and too_many["message"]


def test_a_cart_hold_becomes_an_order_or_is_released(
    tenant: dict[str, str], portal: Portal, platform: PlatformClient
) -> None:
    sku = tenant["other_sku"]
    hold_input = {
        "channel": "b2b_portal",
        "lines": [{"sku": sku, "quantity": 2}],
        "ttlSeconds": 600,
    }
    created = portal.run("create_cart_hold", idempotencyKey=key(), input=hold_input)
    hold = created["createCartHold"]
    assert hold["__typename"] == "CartHoldCreated", hold
    assert hold["cartHold"]["status"] == "active"
    [available] = portal.run("availability", skus=[sku], channel="b2b_portal")["availability"]
    assert available["sku"] == sku and available["availableToPromise"] == STOCK - 2
    assert available["asOf"]
    with platform.client() as staff:
        channel = staff.get(f"/availability/v1/items/{sku}", params={"channel": "b2b_portal"})
    assert available["channelAvailable"] == channel.json()["channel_available"]

    placed = portal.run(
        "place_order_from_hold", idempotencyKey=key(), holdId=hold["cartHold"]["id"]
    )["placeOrderFromHold"]
    assert placed["__typename"] == "OrderPlaced", placed
    assert [(x["sku"], x["quantity"], x["allocated"]) for x in placed["order"]["lines"]] == [
        (sku, 2, 2)
    ]

    second = portal.run("create_cart_hold", idempotencyKey=key(), input=hold_input)
    hold_id = second["createCartHold"]["cartHold"]["id"]
    released = portal.run("release_cart_hold", idempotencyKey=key(), holdId=hold_id)
    assert released["releaseCartHold"]["__typename"] == "CartHoldReleased"
    assert released["releaseCartHold"]["cartHold"]["status"] == "released"

    short = {"channel": "b2b_portal", "lines": [{"sku": sku, "quantity": STOCK * 10}]}
    refused = portal.run("create_cart_hold", idempotencyKey=key(), input=short)["createCartHold"]
    assert refused["__typename"] == "InsufficientStock", refused
    assert refused["shortages"][0]["sku"] == sku

    cancelled = portal.run("cancel_order", idempotencyKey=key(), orderId=placed["order"]["id"])
    assert cancelled["cancelOrder"]["__typename"] == "OrderCancelled", cancelled
    assert cancelled["cancelOrder"]["order"]["status"] == "cancelled"


def test_the_account_catalog_and_statement_examples_answer(
    tenant: dict[str, str], portal: Portal
) -> None:
    account = portal.run("viewer_account")["viewer"]
    assert account["id"] == tenant["customer_id"] and account["name"] == "Portal Co"
    assert account["creditLimit"] == {"amountMinor": 10**9, "currency": "USD"}

    found = portal.run("items_search", search=tenant["sku"].lower(), first=5)["items"]
    assert [edge["node"]["sku"] for edge in found["edges"]] == [tenant["sku"]]
    item = portal.run("item", sku=tenant["sku"])["item"]
    assert item["listPrice"] == {"amountMinor": PRICE, "currency": "USD"}
    assert item["price"]["currency"] == "USD"
    assert portal.run("item", sku="NO-SUCH-SKU")["item"] is None

    statement = portal.run("statement")["viewer"]["statement"]
    assert statement["currency"] == "USD" and statement["asOf"]
    invoices = portal.run("viewer_invoices", first=20)["viewer"]
    assert invoices["id"] == tenant["customer_id"]
    assert invoices["invoices"]["pageInfo"] is not None
