"""What a subscriber receives: one GraphQL type per feed, built from the platform's
events (shared/events/catalog.py). ``update_of`` maps an event to the customer it
concerns (None: only its order is known, resolve it) and the update itself."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum

import msgspec
import strawberry

from experience_apis.portal.money import Long, Money
from shared.events import catalog
from shared.events.envelope import Event

# The streams the feeds read (decision 0038): orders', the WMS's and billing's.
STREAMS = (catalog.STREAM_ORDERS, catalog.STREAM_WMS, catalog.STREAM_BILLING)


@strawberry.enum(description="What happened to a shipment.")
class ShipmentChange(Enum):
    DISPATCHED = "dispatched"
    DELIVERED = "delivered"
    DELAYED = "delayed"


@strawberry.enum(description="What happened to an invoice.")
class InvoiceChange(Enum):
    ISSUED = "issued"
    STATUS_CHANGED = "status_changed"
    PAYMENT_RECEIVED = "payment_received"


@strawberry.type(description="An order of the customer moved to another status.")
class OrderUpdate:
    order_id: strawberry.ID
    status: str
    previous_status: str
    cause: str = strawberry.field(description="Why it moved (stock_received, credit_hold, ...).")
    at: datetime


@strawberry.type(
    description="A shipment of one of the customer's orders was dispatched, delivered or delayed."
)
class ShipmentUpdate:
    change: ShipmentChange
    shipment_id: strawberry.ID
    order_id: strawberry.ID
    carrier: str | None = strawberry.field(
        description="Null only when the portal could not learn it (the order is unreadable)."
    )
    tracking_number: str | None
    delivered_at: datetime | None = strawberry.field(description="DELIVERED only.")
    promised_date: str | None = strawberry.field(
        description="DELAYED only: the new promise (ISO date)."
    )
    delay_reason: str | None = strawberry.field(description="DELAYED only.")
    at: datetime


@strawberry.type(
    description="An invoice of the customer was issued, changed status or received a payment."
)
class InvoiceUpdate:
    change: InvoiceChange
    invoice_id: strawberry.ID
    order_id: strawberry.ID | None = strawberry.field(
        description="Null for PAYMENT_RECEIVED (the payment names invoices, not orders)."
    )
    status: str | None = strawberry.field(description="ISSUED and STATUS_CHANGED.")
    outstanding: Money | None = strawberry.field(
        description="What is left to pay: ISSUED (the total) and STATUS_CHANGED. A "
        "payment is followed by the STATUS_CHANGED that carries the new outstanding."
    )
    total: Money | None = strawberry.field(description="ISSUED only.")
    due_date: str | None = strawberry.field(description="ISSUED only (ISO date).")
    payment_id: strawberry.ID | None = strawberry.field(description="PAYMENT_RECEIVED only.")
    amount_paid: Money | None = strawberry.field(
        description="PAYMENT_RECEIVED only: the part of the payment applied to this invoice."
    )
    at: datetime


Update = OrderUpdate | ShipmentUpdate | InvoiceUpdate


@dataclass(frozen=True)
class Routed:
    """An update and whom it concerns: ``customer_id`` when the event names it, else
    the order to resolve it from."""

    update: Update
    customer_id: str | None
    order_id: str


def _money(value: catalog.Money) -> Money:
    return Money(amount_minor=Long(value.amount_minor), currency=value.currency)


def _shipment(event: Event, payload: catalog.CatalogEvent) -> Routed | None:
    at = event.time
    if isinstance(payload, catalog.ShipmentDispatched):
        update = ShipmentUpdate(
            change=ShipmentChange.DISPATCHED,
            shipment_id=strawberry.ID(payload.shipment_id),
            order_id=strawberry.ID(payload.order_id),
            carrier=payload.carrier,
            tracking_number=payload.tracking_number,
            delivered_at=None,
            promised_date=None,
            delay_reason=None,
            at=at,
        )
    elif isinstance(payload, catalog.ShipmentDelivered):
        update = ShipmentUpdate(
            change=ShipmentChange.DELIVERED,
            shipment_id=strawberry.ID(payload.shipment_id),
            order_id=strawberry.ID(payload.order_id),
            carrier=None,
            tracking_number=None,
            delivered_at=_instant(payload.delivered_at) or at,
            promised_date=None,
            delay_reason=None,
            at=at,
        )
    elif isinstance(payload, catalog.ShipmentDelayed):
        update = ShipmentUpdate(
            change=ShipmentChange.DELAYED,
            shipment_id=strawberry.ID(payload.shipment_id),
            order_id=strawberry.ID(payload.order_id),
            carrier=None,
            tracking_number=None,
            delivered_at=None,
            promised_date=payload.promised_date,
            delay_reason=payload.reason,
            at=at,
        )
    else:
        return None
    return Routed(update, None, str(update.order_id))


def _instant(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _invoice(event: Event, payload: catalog.CatalogEvent) -> list[Routed]:
    at = event.time
    if isinstance(payload, catalog.InvoiceIssued):
        update = InvoiceUpdate(
            change=InvoiceChange.ISSUED,
            invoice_id=strawberry.ID(payload.invoice_id),
            order_id=strawberry.ID(payload.order_id),
            status="issued",
            outstanding=_money(payload.total),
            total=_money(payload.total),
            due_date=payload.due_date,
            payment_id=None,
            amount_paid=None,
            at=at,
        )
        return [Routed(update, payload.customer_id, payload.order_id)]
    if isinstance(payload, catalog.InvoiceStatusChanged):
        update = InvoiceUpdate(
            change=InvoiceChange.STATUS_CHANGED,
            invoice_id=strawberry.ID(payload.invoice_id),
            order_id=strawberry.ID(payload.order_id),
            status=payload.status,
            outstanding=_money(payload.outstanding),
            total=None,
            due_date=None,
            payment_id=None,
            amount_paid=None,
            at=at,
        )
        return [Routed(update, payload.customer_id, payload.order_id)]
    if isinstance(payload, catalog.PaymentReceived):
        return [
            Routed(
                InvoiceUpdate(
                    change=InvoiceChange.PAYMENT_RECEIVED,
                    invoice_id=strawberry.ID(applied.invoice_id),
                    order_id=None,
                    status=None,
                    outstanding=None,
                    total=None,
                    due_date=None,
                    payment_id=strawberry.ID(payload.payment_id),
                    amount_paid=_money(applied.amount),
                    at=at,
                ),
                payload.customer_id,
                "",
            )
            for applied in payload.applied
        ]
    return []


WANTED = frozenset(
    {
        "order.status_changed",
        "shipment.dispatched",
        "shipment.delivered",
        "shipment.delayed",
        "invoice.issued",
        "invoice.status_changed",
        "payment.received",
    }
)


def updates_of(event: Event) -> list[Routed]:
    """The updates an event makes (none for the types no feed carries, or one that
    does not decode: the feed never stops on a bad entry)."""
    if event.type not in WANTED:
        return []
    try:
        payload = catalog.decode_payload(event.data)
    except msgspec.DecodeError:
        return []
    if isinstance(payload, catalog.OrderStatusChanged):
        update = OrderUpdate(
            order_id=strawberry.ID(payload.order_id),
            status=payload.status,
            previous_status=payload.previous_status,
            cause=payload.cause,
            at=event.time,
        )
        return [Routed(update, payload.customer_id, payload.order_id)]
    shipment = _shipment(event, payload)
    if shipment is not None:
        return [shipment]
    return _invoice(event, payload)
