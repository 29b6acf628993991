"""Portal subscriptions (decision 0038) over a real stack: the portal on a real port,
subscribers over graphql-transport-ws (the ``websockets`` library, and gql's
WebsocketsTransport), the orders and shipments made through the real APIs."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from tests.orders.helpers import deliver, new_customer, new_item, receive, wait_order
from tests.portal.live import AUDIENCES, CUSTOMER_SCOPES, STAFF_SCOPES, place, ship
from tests.security.helpers import bearer, register_client
from tests.support.platform import PlatformClient
from tests.support.polling import wait_until
from tests.support.stack import Stack, ThreadServer, service_tokens

PROTOCOL = "graphql-transport-ws"
ORDER_UPDATES = "subscription { orderUpdates { orderId status previousStatus cause at } }"
SHIPMENT_UPDATES = (
    "subscription { shipmentUpdates { change shipmentId orderId carrier trackingNumber at } }"
)
QUIET_SECONDS = 1.5


@contextmanager
def serving_portal(stack: Stack, **settings: Any) -> Iterator[str]:
    """The portal on a real port, with these settings changed; its ws:// URL."""
    from experience_apis.portal.app import create_app

    app = create_app(
        stack.settings("portal", **settings),
        key_source=stack.issuer.key_source(),
        service_tokens=service_tokens(stack.issuer, "portal"),
    )
    server = ThreadServer(app)
    server.start()
    try:
        yield server.url.replace("http://", "ws://") + "/graphql"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def portal_url(live_stack: Stack) -> Iterator[str]:
    with serving_portal(live_stack) as url:
        yield url


def _token(stack: Stack, customer_id: str | None, scopes: str = CUSTOMER_SCOPES) -> str:
    return stack.issuer.token(scopes, audience=AUDIENCES, customer_id=customer_id)


@asynccontextmanager
async def connected(
    url: str, payload: dict[str, Any] | None, headers: dict[str, str] | None = None
) -> AsyncIterator[ClientConnection]:
    async with websockets.connect(
        url, subprotocols=[websockets.Subprotocol(PROTOCOL)], additional_headers=headers
    ) as socket:
        await socket.send(json.dumps({"type": "connection_init", "payload": payload or {}}))
        yield socket


async def subscribe(socket: ClientConnection, op_id: str, query: str, **variables: Any) -> None:
    await socket.send(
        json.dumps(
            {"id": op_id, "type": "subscribe", "payload": {"query": query, "variables": variables}}
        )
    )


async def messages(socket: ClientConnection, seconds: float) -> list[dict[str, Any]]:
    """Every message received within ``seconds``."""
    got: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
        try:
            got.append(json.loads(await asyncio.wait_for(socket.recv(), left)))
        except TimeoutError:
            break
    return got


async def until(socket: ClientConnection, found: Any, seconds: float = 30) -> list[dict[str, Any]]:
    """Messages until one satisfies ``found`` (all of them, that one last)."""
    got: list[dict[str, Any]] = []
    async with asyncio.timeout(seconds):
        while True:
            message = json.loads(await socket.recv())
            got.append(message)
            if found(message):
                return got


def _customer_with_stock(stack: Stack, warehouse: str) -> tuple[str, str]:
    customer_id = new_customer(stack)
    sku = new_item(stack, price=1000)
    receive(stack, warehouse, sku, 20)
    return customer_id, sku


def _payloads(got: list[dict[str, Any]], field: str) -> list[dict[str, Any]]:
    datas = [m["payload"]["data"] for m in got if m["type"] == "next"]
    return [data[field] for data in datas if field in data]


async def test_a_bound_client_receives_its_own_order_and_shipment_updates_only(
    live_stack: Stack, live_warehouse: str, portal_url: str
) -> None:
    mine, sku = await asyncio.to_thread(_customer_with_stock, live_stack, live_warehouse)
    theirs, other_sku = await asyncio.to_thread(_customer_with_stock, live_stack, live_warehouse)
    async with acknowledged_socket(portal_url, _token(live_stack, mine)) as socket:
        await subscribe(socket, "orders", ORDER_UPDATES)
        await subscribe(socket, "shipments", SHIPMENT_UPDATES)
        await asyncio.sleep(0.3)  # the subscriptions are registered with the hub

        their_order = await asyncio.to_thread(place, live_stack, theirs, other_sku, 1)
        await asyncio.to_thread(ship, live_stack, their_order, other_sku, 1)
        my_order = await asyncio.to_thread(place, live_stack, mine, sku, 2)
        await asyncio.to_thread(ship, live_stack, my_order, sku, 2)

        def shipped(message: dict[str, Any]) -> bool:
            data = message.get("payload", {}).get("data") or {}
            update = data.get("shipmentUpdates")
            return update is not None and update["orderId"] == my_order

        got = await until(socket, shipped)
        got += await messages(socket, QUIET_SECONDS)

    assert all(m["type"] == "next" for m in got), got
    assert all("errors" not in m["payload"] for m in got), got
    orders = _payloads(got, "orderUpdates")
    shipments = _payloads(got, "shipmentUpdates")
    assert {o["orderId"] for o in orders} == {my_order}, orders
    assert any(o["status"] == "shipped" for o in orders), orders
    (dispatched,) = shipments
    assert dispatched["change"] == "DISPATCHED"
    assert dispatched["orderId"] == my_order
    assert dispatched["carrier"] == "UPS"
    assert dispatched["trackingNumber"].startswith("1Z")


async def test_a_subscriber_who_joins_after_the_dispatch_gets_the_delivery_with_its_carrier(
    live_stack: Stack, live_warehouse: str, portal_url: str
) -> None:
    """The dispatch went by while nobody listened (the hub skips such events without
    reading them): the delivery still names its carrier, read from the orders API."""
    mine, sku = await asyncio.to_thread(_customer_with_stock, live_stack, live_warehouse)
    my_order = await asyncio.to_thread(place, live_stack, mine, sku, 1)
    await asyncio.to_thread(ship, live_stack, my_order, sku, 1)
    order = await asyncio.to_thread(
        wait_order, live_stack, my_order, lambda o: o["status"] == "shipped", "shipped"
    )
    (shipment,) = order["shipments"]
    await asyncio.sleep(0.5)  # the hub has moved past the dispatch
    async with acknowledged_socket(portal_url, _token(live_stack, mine)) as socket:
        await subscribe(socket, "shipments", SHIPMENT_UPDATES)
        await asyncio.sleep(0.3)  # the subscription is registered with the hub
        await asyncio.to_thread(deliver, live_stack, shipment["shipment_id"])

        def delivered(message: dict[str, Any]) -> bool:
            data = message.get("payload", {}).get("data") or {}
            update = data.get("shipmentUpdates")
            return update is not None and update["change"] == "DELIVERED"

        got = await until(socket, delivered)
    (update,) = _payloads(got, "shipmentUpdates")
    assert update["orderId"] == my_order
    assert update["shipmentId"] == shipment["shipment_id"]
    assert update["carrier"] == "UPS"
    assert update["trackingNumber"].startswith("1Z")


@asynccontextmanager
async def acknowledged_socket(url: str, token: str) -> AsyncIterator[ClientConnection]:
    async with connected(url, {"Authorization": f"Bearer {token}"}) as socket:
        ack = json.loads(await asyncio.wait_for(socket.recv(), 5))
        assert ack["type"] == "connection_ack", ack
        yield socket


async def test_the_upgrade_header_carries_the_token_too(
    live_stack: Stack, live_warehouse: str, portal_url: str
) -> None:
    mine, sku = await asyncio.to_thread(_customer_with_stock, live_stack, live_warehouse)
    header = {"Authorization": f"Bearer {_token(live_stack, mine)}"}
    async with connected(portal_url, None, header) as socket:
        ack = json.loads(await asyncio.wait_for(socket.recv(), 5))
        assert ack["type"] == "connection_ack", ack
        await subscribe(socket, "orders", ORDER_UPDATES)
        await asyncio.sleep(0.3)
        my_order = await asyncio.to_thread(place, live_stack, mine, sku, 1)
        await asyncio.to_thread(ship, live_stack, my_order, sku, 1)
        got = await until(
            socket,
            lambda m: (
                m["type"] == "next" and m["payload"]["data"]["orderUpdates"]["orderId"] == my_order
            ),
        )
    assert got[-1]["payload"]["data"]["orderUpdates"]["orderId"] == my_order


async def test_staff_follow_a_named_customer(
    live_stack: Stack, live_warehouse: str, portal_url: str
) -> None:
    customer, sku = await asyncio.to_thread(_customer_with_stock, live_stack, live_warehouse)
    staff = _token(live_stack, None, STAFF_SCOPES)
    query = "subscription($c: ID) { orderUpdates(customerId: $c) { orderId status } }"
    async with acknowledged_socket(portal_url, staff) as socket:
        await subscribe(socket, "orders", query, c=customer)
        await asyncio.sleep(0.3)
        order = await asyncio.to_thread(place, live_stack, customer, sku, 1)
        await asyncio.to_thread(ship, live_stack, order, sku, 1)
        got = await until(socket, lambda m: m["type"] == "next")
    assert got[-1]["payload"]["data"]["orderUpdates"]["orderId"] == order


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        pytest.param({}, 4401, id="no-token"),
        pytest.param({"Authorization": "Bearer not-a-token"}, 4401, id="bad-token"),
        pytest.param({"Authorization": "Basic abc"}, 4401, id="not-bearer"),
    ],
)
async def test_a_connection_without_a_valid_token_is_closed_4401(
    portal_url: str, payload: dict[str, Any], code: int
) -> None:
    async with connected(portal_url, payload) as socket:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(socket.recv(), 5)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == code


async def test_a_token_without_the_portal_scope_is_closed_4403(
    live_stack: Stack, portal_url: str
) -> None:
    token = _token(live_stack, "C-1", "orders:read billing:read")
    async with connected(portal_url, {"Authorization": f"Bearer {token}"}) as socket:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(socket.recv(), 5)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4403


async def test_a_token_for_another_api_is_closed_4403(live_stack: Stack, portal_url: str) -> None:
    token = live_stack.issuer.token(CUSTOMER_SCOPES, audience=["orders"], customer_id="C-1")
    async with connected(portal_url, {"Authorization": f"Bearer {token}"}) as socket:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(socket.recv(), 5)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4403


async def test_subscribing_before_connection_init_is_closed_4401(portal_url: str) -> None:
    async with websockets.connect(
        portal_url, subprotocols=[websockets.Subprotocol(PROTOCOL)]
    ) as socket:
        await subscribe(socket, "orders", ORDER_UPDATES)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(socket.recv(), 5)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401


async def test_another_customers_updates_are_refused(live_stack: Stack, portal_url: str) -> None:
    token = _token(live_stack, "C-MINE")
    query = 'subscription { orderUpdates(customerId: "C-THEIRS") { orderId } }'
    async with acknowledged_socket(portal_url, token) as socket:
        await subscribe(socket, "orders", query)
        got = await messages(socket, 2)
    errors = [m for m in got if m["type"] == "error"] + [
        m for m in got if m["type"] == "next" and "errors" in m["payload"]
    ]
    assert errors, got
    assert "FORBIDDEN" in json.dumps(errors)


async def test_a_subscription_is_guarded_by_the_query_limits(
    live_stack: Stack, portal_url: str
) -> None:
    """The socket runs under the same guard as POST: here the alias limit (30)."""
    aliases = " ".join(f"a{n}: orderId" for n in range(31))
    too_many = "subscription { orderUpdates { " + aliases + " } }"
    async with acknowledged_socket(portal_url, _token(live_stack, "C-1")) as socket:
        await subscribe(socket, "aliases", too_many)
        got = await messages(socket, 2)
    assert got, "no answer"
    assert got[0]["type"] == "error", got
    assert "aliases" in json.dumps(got[0]["payload"]).lower(), got


async def test_gql_client_receives_the_invoice_issued_for_its_shipment(
    live_stack: Stack, live_warehouse: str, portal_url: str
) -> None:
    """A real GraphQL client (gql's WebsocketsTransport, graphql-transport-ws) with the
    token in connection_init."""
    from gql import Client, gql
    from gql.transport.websockets import WebsocketsTransport

    mine, sku = await asyncio.to_thread(_customer_with_stock, live_stack, live_warehouse)
    transport = WebsocketsTransport(
        url=portal_url,
        init_payload={"Authorization": f"Bearer {_token(live_stack, mine)}"},
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
    )
    from tests.contract.test_graphql_examples import EXAMPLES_DIR

    query = gql((EXAMPLES_DIR / "invoice_updates.graphql").read_text())  # the shipped example
    async with Client(transport=transport) as session:
        received: list[dict[str, Any]] = []

        async def first_issued() -> None:
            async for result in session.subscribe(query):
                received.append(result["invoiceUpdates"])
                if result["invoiceUpdates"]["change"] == "ISSUED":
                    return

        listening = asyncio.create_task(first_issued())
        await asyncio.sleep(0.3)
        order = await asyncio.to_thread(place, live_stack, mine, sku, 2)
        await asyncio.to_thread(ship, live_stack, order, sku, 2)
        await asyncio.wait_for(listening, 45)
    issued = received[-1]
    assert issued["orderId"] == order
    assert issued["status"] == "issued"
    assert issued["total"]["amountMinor"] > 0
    assert issued["outstanding"] == issued["total"]


# --- through the gateway, with a token it issued -----------------------------------------

PARTNER_SCOPES = "portal orders:read billing:read"


def _gateway_world(platform: PlatformClient) -> tuple[str, str, str]:
    """A customer with stock, its portal client's token, and the sku."""
    tag = uuid.uuid4().hex[:8].upper()
    sku, customer_id = f"SUB-{tag}", f"CUST-SUB-{tag}"
    money = {"amount_minor": 1500, "currency": "USD"}
    with platform.client() as staff:
        item = {"sku": sku, "name": "Subscribed item", "unit_price": money}
        assert staff.post("/erp/v1/items", json=item).status_code == 201
        customer = {
            "customer_id": customer_id,
            "name": "Live Co",
            "credit_limit": {"amount_minor": 10**9, "currency": "USD"},
        }
        assert staff.post("/erp/v1/customers", json=customer).status_code == 201
        receipt = {"warehouse_id": "WH-EAST", "lines": [{"sku": sku, "quantity": 50}]}
        key = {"Idempotency-Key": uuid.uuid4().hex}
        assert staff.post("/wms/v1/receipts", json=receipt, headers=key).status_code == 201
        wait_until(
            lambda: staff.get(f"/availability/v1/items/{sku}").json()["available_to_promise"] == 50,
            what="the receipt in availability",
        )
    creds = register_client(platform, PARTNER_SCOPES, customer=customer_id, tier="internal")
    return customer_id, bearer(platform, creds), sku


def _place_and_ship(platform: PlatformClient, customer_id: str, sku: str) -> str:
    with platform.client() as staff:
        order = {
            "customer_id": customer_id,
            "channel": "b2b_portal",
            "lines": [{"sku": sku, "quantity": 1}],
        }
        placed = staff.post(
            "/orders/v1/orders", json=order, headers={"Idempotency-Key": uuid.uuid4().hex}
        )
        assert placed.status_code in (201, 202), placed.text
        order_id = str(placed.json()["order_id"])

        def fulfillment() -> list[dict[str, Any]]:
            found = staff.get("/wms/v1/fulfillment-orders", params={"order_id": order_id})
            items: list[dict[str, Any]] = found.json()["items"] if found.status_code == 200 else []
            return items

        (fo,) = wait_until(fulfillment, what="the fulfillment order")
        shipped = staff.post(
            f"/wms/v1/fulfillment-orders/{fo['fulfillment_order_id']}/shipments",
            json={
                "carrier": "UPS",
                "tracking_number": f"1Z{uuid.uuid4().hex[:10].upper()}",
                "lines": [{"sku": sku, "quantity": 1}],
            },
            headers={"Idempotency-Key": uuid.uuid4().hex},
        )
        assert shipped.status_code == 201, shipped.text
    return order_id


async def test_through_the_gateway_with_a_token_it_issued(platform: PlatformClient) -> None:
    customer_id, token, sku = await asyncio.to_thread(_gateway_world, platform)
    url = platform.gateway.replace("http://", "ws://") + "/graphql"
    async with acknowledged_socket(url, token) as socket:
        await subscribe(socket, "orders", ORDER_UPDATES)
        await subscribe(socket, "shipments", SHIPMENT_UPDATES)
        await asyncio.sleep(0.5)
        order_id = await asyncio.to_thread(_place_and_ship, platform, customer_id, sku)

        def dispatched(message: dict[str, Any]) -> bool:
            data = message.get("payload", {}).get("data") or {}
            return (data.get("shipmentUpdates") or {}).get("orderId") == order_id

        got = await until(socket, dispatched, seconds=60)
    assert all("errors" not in m["payload"] for m in got), got
    assert {o["orderId"] for o in _payloads(got, "orderUpdates")} <= {order_id}
    assert _payloads(got, "shipmentUpdates")[-1]["carrier"] == "UPS"


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        pytest.param({}, 4401, id="no-token"),
        pytest.param({"Authorization": "Bearer not-a-token"}, 4401, id="bad-token"),
    ],
)
async def test_the_gateway_refuses_a_socket_without_a_valid_token(
    platform: PlatformClient, payload: dict[str, Any], code: int
) -> None:
    url = platform.gateway.replace("http://", "ws://") + "/graphql"
    async with connected(url, payload) as socket:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(socket.recv(), 10)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == code


async def test_the_gateway_refuses_a_token_without_the_portal_grant(
    platform: PlatformClient,
) -> None:
    creds = await asyncio.to_thread(
        register_client, platform, "orders:read", customer="CUST-NONE", tier="internal"
    )
    token = await asyncio.to_thread(bearer, platform, creds)
    url = platform.gateway.replace("http://", "ws://") + "/graphql"
    async with connected(url, {"Authorization": f"Bearer {token}"}) as socket:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(socket.recv(), 10)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4403


async def test_a_connection_is_closed_4401_when_its_token_expires(
    live_stack: Stack, portal_url: str
) -> None:
    token = live_stack.issuer.token(
        CUSTOMER_SCOPES, audience=AUDIENCES, customer_id="C-1", expires_in=2
    )
    async with acknowledged_socket(portal_url, token) as socket:
        await subscribe(socket, "orders", ORDER_UPDATES)
        with pytest.raises(websockets.ConnectionClosed) as closed:  # nothing else comes
            await asyncio.wait_for(socket.recv(), 10)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401
    assert closed.value.rcvd.reason == "Token expired"


async def test_a_token_revoked_while_connected_closes_the_socket_and_it_is_audited(
    platform: PlatformClient,
) -> None:
    """Revoked through the gateway (RFC 7009, the client's own credentials): the
    portal learns of it by the revocation poll and closes 4401; the gateway relays the
    close and records the connection in its audit log."""
    creds = await asyncio.to_thread(
        register_client, platform, PARTNER_SCOPES, customer="CUST-REVOKED", tier="internal"
    )
    token = await asyncio.to_thread(bearer, platform, creds)
    url = platform.gateway.replace("http://", "ws://") + "/graphql"
    async with acknowledged_socket(url, token) as socket:
        await subscribe(socket, "orders", ORDER_UPDATES)
        assert await messages(socket, 0.5) == []  # open and quiet
        revoked = await asyncio.to_thread(
            lambda: httpx.post(
                f"{platform.gateway}/oauth/revoke",
                data={"token": token},
                auth=(creds.client_id, creds.client_secret),
                timeout=10,
            )
        )
        assert revoked.status_code == 200
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(socket.recv(), 15)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4401, "Token revoked")

    def audited() -> list[dict[str, Any]]:
        with platform.client() as admin:
            page = admin.get("/audit", params={"client": creds.client_id})
        assert page.status_code == 200, page.text
        return [row for row in page.json()["items"] if row["method"] == "WS"]

    (row,) = await asyncio.to_thread(wait_until, audited, what="the socket in the audit log")
    assert row["route"] == "/graphql"
    assert row["status"] == 4401
    assert row["customer_id"] == "CUST-REVOKED"
    assert row["latency_ms"] >= 500  # the connection's lifetime
    assert row["correlation_id"]


@pytest.fixture(scope="module")
def registered_only_url(live_stack: Stack) -> Iterator[str]:
    """The portal as production runs it: only the example operations."""
    with serving_portal(live_stack, portal_registered_only=True) as url:
        yield url


async def test_registered_only_runs_the_shipped_subscription_and_refuses_others(
    live_stack: Stack, live_warehouse: str, registered_only_url: str
) -> None:
    from tests.contract.test_graphql_examples import EXAMPLES_DIR

    shipped = (EXAMPLES_DIR / "order_updates.graphql").read_text()
    mine, sku = await asyncio.to_thread(_customer_with_stock, live_stack, live_warehouse)
    async with acknowledged_socket(registered_only_url, _token(live_stack, mine)) as socket:
        await subscribe(socket, "adhoc", "subscription { orderUpdates { orderId } }")
        (refused,) = await messages(socket, 2)
        await subscribe(socket, "shipped", shipped)
        await asyncio.sleep(0.3)
        order_id = await asyncio.to_thread(place, live_stack, mine, sku, 1)
        got = await until(
            socket,
            lambda m: (
                m.get("id") == "shipped"
                and m["type"] == "next"
                and m["payload"]["data"]["orderUpdates"]["orderId"] == order_id
            ),
        )
    assert refused["id"] == "adhoc" and refused["type"] == "error", refused
    assert refused["payload"][0]["extensions"]["code"] == "OPERATION_NOT_REGISTERED"
    update = got[-1]["payload"]["data"]["orderUpdates"]
    assert set(update) == {"orderId", "status", "previousStatus", "cause", "at"}
