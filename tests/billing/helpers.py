"""What billing's tests need of the ERP and the bus: the evidence an invoice needs
(the sales order booked, the shipment's goods issue posted), a seeded shipped order,
reads of billing's documents and events, and payments."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from shared.events.catalog import STREAM_BILLING, STREAM_WMS, ShipmentDispatched
from shared.events.envelope import Event
from shared.events.sqlite_log import SqliteEventLog
from tests.orders.helpers import seed_released_order, shipment_event, uid
from tests.support.polling import wait_until
from tests.support.stack import Stack


def book_sales_order(
    stack: Stack,
    order_id: str,
    customer_id: str,
    lines: Sequence[tuple[str, int, int]],
    *,
    currency: str = "USD",
) -> None:
    """The sales order as the orders service's ERP sync would book it."""
    with stack.client("erp", "erp:write") as erp:
        response = erp.put(
            f"/erp/v1/sales-orders/{order_id}",
            json={
                "customer_id": customer_id,
                "currency": currency,
                "version": 1,
                "status": "open",
                "lines": [
                    {"sku": sku, "quantity": quantity, "unit_price_minor": price}
                    for sku, quantity, price in lines
                ],
            },
        )
    assert response.status_code in (200, 201), response.text


def goods_issue(
    shipment_id: str,
    lines: Sequence[tuple[str, int]],
    order_id: str | None = None,
    warehouse_id: str = "WH-test",
) -> dict[str, Any]:
    """The body of a shipment's goods issue posting, as availability's postings make it
    (naming the order: the ERP's ``goods_issue.posted`` carries it to billing)."""
    body: dict[str, Any] = {
        "kind": "goods_issue",
        "reference": shipment_id,
        "warehouse_id": warehouse_id,
        "lines": [{"sku": sku, "quantity_delta": -quantity} for sku, quantity in lines],
    }
    if order_id is not None:
        body["order_id"] = order_id
    return body


def post_goods_issue(
    stack: Stack,
    shipment_id: str,
    lines: Sequence[tuple[str, int]],
    order_id: str | None = None,
    warehouse_id: str = "WH-test",
) -> None:
    """The shipment's goods issue posted in the ERP; with ``order_id``, billing invoices
    the shipment on the ERP's ``goods_issue.posted``."""
    with stack.client("erp", "erp:write") as erp:
        response = erp.post(
            "/erp/v1/inventory/postings",
            json=goods_issue(shipment_id, lines, order_id, warehouse_id),
            headers={"Idempotency-Key": uid("gi")},
        )
    assert response.status_code == 201, response.text


def seed_booked_order(stack: Stack, customer_id: str, lines: Sequence[tuple[str, int, int]]) -> str:
    """A released order in the orders service (back door) that the ERP has booked."""
    order_id = seed_released_order(stack, customer_id, lines)
    book_sales_order(stack, order_id, customer_id, lines)
    return order_id


def ship_posted(
    stack: Stack, order_id: str, lines: Sequence[tuple[str, int]], *, post: bool = True
) -> Event:
    """A ``shipment.dispatched`` on the bus, and (``post``) its goods issue posted in
    the ERP as availability posts it, naming the order: what billing invoices on
    (without ``post``, while availability is down: nothing posts it)."""
    event = shipment_event(order_id, lines)
    if post:  # first: availability, which posts on the shipment, finds it posted
        post_goods_issue(stack, event.payload(ShipmentDispatched).shipment_id, lines, order_id)
    stack.publish(STREAM_WMS, [event])
    return event


def billing_get(stack: Stack, path: str, *, params: Any = None, **client: Any) -> Any:
    with stack.client("billing", "billing:read", **client) as billing:
        response = billing.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def invoices_of(stack: Stack, order_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = billing_get(
        stack, "/billing/v1/invoices", params={"order_id": order_id}
    )["items"]
    return items


def invoice_of(stack: Stack, order_id: str) -> dict[str, Any]:
    (invoice,) = wait_until(lambda: invoices_of(stack, order_id), what=f"the invoice of {order_id}")
    found: dict[str, Any] = invoice
    return found


def erp_get(stack: Stack, path: str, params: Any = None) -> Any:
    with stack.client("erp", "erp:read") as erp:
        response = erp.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def billing_events(stack: Stack, type_: str) -> list[Event]:
    async def read() -> list[Event]:
        log = SqliteEventLog(stack.bus_path())
        try:
            entries = await log.read_all(STREAM_BILLING, None, 100_000)
        finally:
            await log.close()
        return [event for _, _, event in entries if event.type == type_]

    return asyncio.run(read())


def events_about(stack: Stack, type_: str, text: str, *, relayed: int = 0) -> list[Event]:
    """Billing's events of ``type_`` that name ``text``, once at least ``relayed`` of
    them are on the bus (the outbox relays after the commit the API answered from)."""

    def found() -> list[Event]:
        return [e for e in billing_events(stack, type_) if text.encode() in bytes(e.data)]

    if relayed:
        wait_until(lambda: len(found()) >= relayed, what=f"{relayed} {type_} of {text}")
    return found()


def pay(
    stack: Stack,
    customer_id: str,
    amount: int,
    invoices: Sequence[tuple[str, int]] | None = None,
    *,
    currency: str = "USD",
    key: str | None = None,
    scopes: str = "billing:write billing:read",
    bound: str | None = None,
) -> Any:
    """POST /billing/v1/payments (``bound``: as a client bound to that customer)."""
    body: dict[str, Any] = {
        "customer_id": customer_id,
        "amount": {"amount_minor": amount, "currency": currency},
    }
    if invoices is not None:
        body["invoices"] = [
            {"invoice_id": invoice_id, "amount": {"amount_minor": value, "currency": currency}}
            for invoice_id, value in invoices
        ]
    with stack.client("billing", scopes, customer_id=bound) as billing:
        return billing.post(
            "/billing/v1/payments", json=body, headers={"Idempotency-Key": key or uid("pay")}
        )


def money(amount: int, currency: str = "USD") -> dict[str, Any]:
    return {"amount_minor": amount, "currency": currency}


def dispositioned(
    order_id: str,
    lines: Sequence[tuple[str, int, str]],
    *,
    return_id: str | None = None,
    disposition_id: str | None = None,
    rma_id: str | None = None,
    released: bool = False,
) -> Event:
    """A ``return.dispositioned`` as the WMS publishes it: (sku, quantity, disposition)."""
    from shared.events.catalog import DispositionedLine, ReturnDispositioned
    from tests.support.events import wms_event

    return wms_event(
        "return.dispositioned",
        "WH-test",
        ReturnDispositioned(
            return_id=return_id or uid("RET"),
            order_id=order_id,
            warehouse_id="WH-test",
            lines=[DispositionedLine(sku, quantity, kind) for sku, quantity, kind in lines],  # type: ignore[arg-type]
            rma_id=rma_id,
            disposition_id=disposition_id or uid("DSP"),
            released=released,
        ),
    )


def credit_notes_of(stack: Stack, invoice_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = billing_get(
        stack, "/billing/v1/credit-notes", params={"invoice_id": invoice_id}
    )["items"]
    return items


def adjust(
    stack: Stack,
    invoice_id: str,
    lines: Sequence[tuple[str, int]],
    *,
    key: str | None = None,
    currency: str = "USD",
    scopes: str = "billing:admin",
    bound: str | None = None,
) -> Any:
    with stack.client("billing", scopes, customer_id=bound) as billing:
        return billing.post(
            f"/billing/v1/invoices/{invoice_id}/adjustments",
            json={
                "reason": "Agreed price",
                "lines": [
                    {"sku": sku, "unit_price": {"amount_minor": price, "currency": currency}}
                    for sku, price in lines
                ],
            },
            headers={"Idempotency-Key": key or uid("adj")},
        )
