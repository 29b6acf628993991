"""Two customers on a stack of every service, for the route-table and portal-reach
tests: customer A owns real objects (a shipped and invoiced order, an open order with
its allocation, a hold), customer B owns nothing and probes A's objects with a client
bound to B, holding every scope a bound client can be granted."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from gateway.clients.registry import STAFF_SCOPES
from shared.auth.litestar_auth import SYSTEM_API_SCOPE_PREFIXES, is_admin_scope
from shared.topology import ALL_AUDIENCES, ALL_SCOPES
from tests.orders.helpers import (
    fulfillment_orders,
    new_customer,
    new_item,
    new_warehouse,
    receive,
    uid,
)
from tests.support.polling import wait_until
from tests.support.stack import Stack
from tests.support.tls import TLS
from tests.support.tokens import TestIssuer

SERVICES = ["erp", "wms", "availability", "order_to_ship", "billing", "portal"]
CHANNEL = "b2b_portal"
# Every scope the client registry grants a client bound to a customer (ADR 0014, 0021):
# all but the administration, staff and system-API ones. A new scope joins by itself.
PARTNER_SCOPES = " ".join(
    scope
    for scope in ALL_SCOPES
    if not (
        is_admin_scope(scope)
        or scope in STAFF_SCOPES
        or scope.startswith(SYSTEM_API_SCOPE_PREFIXES)
    )
)


@dataclass(frozen=True)
class CustomerA:
    customer_id: str
    shipped_order_id: str  # shipped and invoiced
    invoice_id: str
    fulfillment_order_id: str  # of the shipped order
    open_order_id: str  # allocated, not shipped: its allocation_id is the same id
    hold_id: str
    payment_id: str = ""  # a part of the invoice paid
    credit_note_id: str = ""  # a price correction of the invoice
    rma_id: str = ""  # a return authorised on the shipped order


@dataclass(frozen=True)
class World:
    stack: Stack
    sku: str
    warehouse_id: str
    rule_id: str
    a: CustomerA
    b_customer_id: str

    def identifiers_of_a(self) -> list[str]:
        """Strings that must never appear in an answer to customer B."""
        a = self.a
        return [
            a.customer_id,
            a.shipped_order_id,
            a.invoice_id,
            a.fulfillment_order_id,
            a.open_order_id,
            a.hold_id,
            a.rma_id,
            a.payment_id,
            a.credit_note_id,
        ]


def bound_token(
    issuer: TestIssuer, customer_id: str, scopes: str = PARTNER_SCOPES, **claims: Any
) -> str:
    """A token as the gateway would sign it for a client bound to ``customer_id``, with
    every API as audience so that only the route's own rule can refuse it."""
    return issuer.token(
        scopes,
        audience=list(ALL_AUDIENCES),
        client_id=f"partner-{customer_id}",
        customer_id=customer_id,
        **claims,
    )


def http(base_url: str, token: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=base_url, headers=headers, timeout=30.0, verify=TLS)


def _created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code in (200, 201), response.text
    body: dict[str, Any] = response.json()
    return body


def _place(stack: Stack, customer_id: str, sku: str, quantity: int) -> str:
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
    return str(_created(placed)["order_id"])


def _ship(stack: Stack, order_id: str, sku: str, quantity: int) -> str:
    (fo,) = wait_until(lambda: fulfillment_orders(stack, order_id), what="the fulfillment order")
    fo_id = str(fo["fulfillment_order_id"])
    with stack.client("wms", "admin") as wms:
        shipped = wms.post(
            f"/wms/v1/fulfillment-orders/{fo_id}/shipments",
            json={
                "carrier": "UPS",
                "tracking_number": f"1Z{uuid.uuid4().hex[:10].upper()}",
                "lines": [{"sku": sku, "quantity": quantity}],
            },
            headers={"Idempotency-Key": uid("ship")},
        )
    _created(shipped)
    return fo_id


def _invoice_of(stack: Stack, order_id: str) -> str:
    def invoices() -> list[dict[str, Any]]:
        with stack.client("billing", "admin") as billing:
            listed = billing.get("/billing/v1/invoices", params={"order_id": order_id})
        items: list[dict[str, Any]] = listed.json()["items"] if listed.status_code == 200 else []
        return items

    (invoice,) = wait_until(invoices, timeout=30, what=f"the invoice of {order_id}")
    return str(invoice["invoice_id"])


def _paid_and_corrected(stack: Stack, customer_id: str, invoice_id: str, sku: str) -> list[str]:
    """[payment_id, credit_note_id]: a payment of part of the invoice and a price
    correction of it, both by staff."""
    with stack.client("billing", "admin") as billing:
        paid = billing.post(
            "/billing/v1/payments",
            json={
                "customer_id": customer_id,
                "amount": {"amount_minor": 100, "currency": "USD"},
                "invoices": [
                    {"invoice_id": invoice_id, "amount": {"amount_minor": 100, "currency": "USD"}}
                ],
            },
            headers={"Idempotency-Key": uid("pay")},
        )
        corrected = billing.post(
            f"/billing/v1/invoices/{invoice_id}/adjustments",
            json={
                "reason": "Agreed price",
                "lines": [{"sku": sku, "unit_price": {"amount_minor": 1, "currency": "USD"}}],
            },
            headers={"Idempotency-Key": uid("adj")},
        )
    return [str(_created(paid)["payment_id"]), str(_created(corrected)["credit_note_id"])]


def _hold(stack: Stack, customer_id: str, sku: str) -> str:
    with stack.client("availability", "admin") as availability:
        held = availability.post(
            "/availability/v1/holds",
            json={
                "customer_id": customer_id,
                "channel": CHANNEL,
                "lines": [{"sku": sku, "quantity": 1}],
                "ttl_seconds": 3600,
            },
            headers={"Idempotency-Key": uid("hold")},
        )
    return str(_created(held)["hold_id"])


def _rule(stack: Stack, sku: str) -> str:
    rule_id = uid("RULE")
    with stack.client("availability", "admin") as availability:
        put = availability.put(
            f"/availability/v1/channel-rules/{rule_id}",
            json={"sku": sku, "kind": "fence", "channel": "marketplace", "quantity": 5},
        )
    _created(put)
    return rule_id


def _rma(stack: Stack, order_id: str, sku: str) -> str:
    with stack.client("order_to_ship", "admin") as orders:
        authorised = orders.post(
            f"/orders/v1/orders/{order_id}/returns",
            json={"lines": [{"sku": sku, "quantity": 1}]},
            headers={"Idempotency-Key": uid("rma")},
        )
    return str(_created(authorised)["rma_id"])


def build_world(data_dir: Path, issuer: TestIssuer) -> Iterator[World]:
    """Starts the stack, creates A's objects as staff (an unbound client) would, and
    yields the world; stops the stack afterwards."""
    with Stack(data_dir, issuer, SERVICES) as stack:
        missing = [name for name in SERVICES if not stack.has(name)]
        assert not missing, f"services not importable: {missing}"
        warehouse_id = new_warehouse(stack)
        sku = new_item(stack)
        receive(stack, warehouse_id, sku, 100)
        a_id = new_customer(stack, customer_id=uid("CUST-A"))
        b_id = new_customer(stack, customer_id=uid("CUST-B"))
        shipped = _place(stack, a_id, sku, 2)
        fo_id = _ship(stack, shipped, sku, 2)
        invoice_id = _invoice_of(stack, shipped)
        open_order = _place(stack, a_id, sku, 3)
        payment_id, credit_note_id = _paid_and_corrected(stack, a_id, invoice_id, sku)
        a = CustomerA(
            customer_id=a_id,
            shipped_order_id=shipped,
            invoice_id=invoice_id,
            fulfillment_order_id=fo_id,
            open_order_id=open_order,
            hold_id=_hold(stack, a_id, sku),
            rma_id=_rma(stack, shipped, sku),
            payment_id=payment_id,
            credit_note_id=credit_note_id,
        )
        yield World(stack, sku, warehouse_id, _rule(stack, sku), a, b_id)
