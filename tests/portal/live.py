"""The portal in process over a real stack of services (erp, wms, availability,
order-to-ship, billing on real ports): customers, orders, shipments, invoices and
returns made through the real APIs, and a recorder of every call the portal makes to
the process APIs (``app.state.portal_call_observer``, experience_apis/portal/context.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from litestar.testing import AsyncTestClient

from tests.orders.helpers import (
    fulfillment_orders,
    new_customer,
    new_item,
    receive,
    uid,
)
from tests.support.polling import wait_until
from tests.support.stack import Stack

STACK_SERVICES = ["erp", "wms", "availability", "order_to_ship", "billing"]
CHANNEL = "b2b_portal"
AUDIENCES = ["graphql", "orders", "billing", "availability"]
# What a customer's portal client holds: reads and the writes the mutations make.
CUSTOMER_SCOPES = "portal orders:read orders:write billing:read inventory:read inventory:write"
STAFF_SCOPES = f"{CUSTOMER_SCOPES} portal:staff"


@dataclass
class Calls:
    """Every process-API call the portal made: (service, method, path)."""

    seen: list[tuple[str, str, str]] = field(default_factory=list)

    def __call__(self, service: str, method: str, path: str) -> None:
        self.seen.append((service, method, path))

    def clear(self) -> None:
        self.seen.clear()


@dataclass
class Live:
    stack: Stack
    client: AsyncTestClient[Any]
    calls: Calls

    def token(self, customer_id: str | None, scopes: str = CUSTOMER_SCOPES) -> str:
        return self.stack.issuer.token(scopes, audience=AUDIENCES, customer_id=customer_id)

    def staff(self) -> str:
        return self.token(None, STAFF_SCOPES)

    async def ask(
        self, token: str, query: str, variables: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        response = await self.client.post(
            "/graphql",
            json={"query": query, "variables": variables or {}},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        body.pop("extensions", None)  # the query's cost (limits/): not the answer
        return body

    async def data(
        self, token: str, query: str, variables: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        body = await self.ask(token, query, variables)
        assert "errors" not in body, body
        data: dict[str, Any] = body["data"]
        return data


# -- a world of orders ---------------------------------------------------------------


def place(stack: Stack, customer_id: str, sku: str, quantity: int) -> str:
    with stack.client("order_to_ship", "admin") as orders:
        placed = orders.post(
            "/orders/v1/orders",
            json={
                "customer_id": customer_id,
                "channel": CHANNEL,
                "lines": [{"sku": sku, "quantity": quantity}],
            },
            headers={"Idempotency-Key": uid("order")},
        )
    assert placed.status_code in (201, 202), placed.text
    return str(placed.json()["order_id"])


def ship(stack: Stack, order_id: str, sku: str, quantity: int) -> None:
    (fo,) = wait_until(lambda: fulfillment_orders(stack, order_id), what="the fulfillment order")
    with stack.client("wms", "admin") as wms:
        shipped = wms.post(
            f"/wms/v1/fulfillment-orders/{fo['fulfillment_order_id']}/shipments",
            json={
                "carrier": "UPS",
                "tracking_number": f"1Z{uuid.uuid4().hex[:10].upper()}",
                "lines": [{"sku": sku, "quantity": quantity}],
            },
            headers={"Idempotency-Key": uid("ship")},
        )
    assert shipped.status_code == 201, shipped.text


def invoice_of(stack: Stack, order_id: str) -> dict[str, Any]:
    def invoices() -> list[dict[str, Any]]:
        with stack.client("billing", "admin") as billing:
            listed = billing.get("/billing/v1/invoices", params={"order_id": order_id})
        items: list[dict[str, Any]] = listed.json()["items"] if listed.status_code == 200 else []
        return items

    found: list[dict[str, Any]] = wait_until(
        invoices, timeout=30, what=f"the invoice of {order_id}"
    )
    (invoice,) = found
    return invoice


def pay_part(stack: Stack, customer_id: str, invoice_id: str, amount: int) -> str:
    money = {"amount_minor": amount, "currency": "USD"}
    with stack.client("billing", "admin") as billing:
        paid = billing.post(
            "/billing/v1/payments",
            json={
                "customer_id": customer_id,
                "amount": money,
                "invoices": [{"invoice_id": invoice_id, "amount": money}],
            },
            headers={"Idempotency-Key": uid("pay")},
        )
    assert paid.status_code == 201, paid.text
    return str(paid.json()["payment_id"])


def authorise_return(stack: Stack, order_id: str, sku: str, quantity: int) -> str:
    with stack.client("order_to_ship", "admin") as orders:
        authorised = orders.post(
            f"/orders/v1/orders/{order_id}/returns",
            json={"lines": [{"sku": sku, "quantity": quantity}]},
            headers={"Idempotency-Key": uid("rma")},
        )
    assert authorised.status_code == 201, authorised.text
    return str(authorised.json()["rma_id"])


@dataclass(frozen=True)
class Account:
    """A customer with ``orders`` orders of one line each; the first ``shipped`` of
    them shipped and invoiced, a part of the first invoice paid and one unit of the
    first order under return."""

    customer_id: str
    sku: str
    order_ids: list[str]
    shipped_order_ids: list[str]
    invoice_ids: list[str]
    payment_id: str
    rma_id: str


def new_account(stack: Stack, warehouse: str, orders: int, shipped: int = 2) -> Account:
    customer_id = new_customer(stack)
    sku = new_item(stack, price=1000)
    receive(stack, warehouse, sku, orders * 3 + 10)
    wait_until(lambda: _atp(stack, sku) >= orders * 3, what=f"{sku} received at availability")
    order_ids = [place(stack, customer_id, sku, 2) for _ in range(orders)]
    shipped_ids = order_ids[:shipped]
    for order_id in shipped_ids:
        ship(stack, order_id, sku, 2)
    invoices = [invoice_of(stack, order_id) for order_id in shipped_ids]
    invoice_ids = [str(i["invoice_id"]) for i in invoices]
    payment_id = pay_part(stack, customer_id, invoice_ids[0], 100)
    rma_id = authorise_return(stack, shipped_ids[0], sku, 1)
    return Account(customer_id, sku, order_ids, shipped_ids, invoice_ids, payment_id, rma_id)


def _atp(stack: Stack, sku: str) -> int:
    with stack.client("availability", "inventory:read") as availability:
        found = availability.get(f"/availability/v1/items/{sku}")
    return int(found.json()["available_to_promise"]) if found.status_code == 200 else 0


def live_portal(stack: Stack) -> Iterator[tuple[Any, Calls]]:
    """(app, calls) for an AsyncTestClient: the portal app of this stack, recording."""
    from experience_apis.portal.app import create_app
    from experience_apis.portal.context import CALL_OBSERVER

    app = create_app(stack.settings("portal"), key_source=stack.issuer.key_source())
    calls = Calls()
    setattr(app.state, CALL_OBSERVER, calls)
    yield app, calls
