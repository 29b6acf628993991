"""The process APIs' response shapes as the portal reads them (ADR 0002), decoded
leniently: fields the portal does not read are ignored, new optional ones default."""

from __future__ import annotations

from datetime import date, datetime

import msgspec


class MoneyDoc(msgspec.Struct, frozen=True):
    amount_minor: int
    currency: str


class OrderLineDoc(msgspec.Struct, frozen=True):
    sku: str
    quantity: int
    allocated: int = 0
    backordered: int = 0
    shipped: int = 0
    unit_price: MoneyDoc | None = None
    released: int = 0
    picked: int = 0
    delivered: int = 0
    cancelled: int = 0
    invoiced: int = 0
    returned: int = 0


class ItemQuantityDoc(msgspec.Struct, frozen=True):
    sku: str
    quantity: int


class ShipmentDoc(msgspec.Struct, frozen=True):
    shipment_id: str
    carrier: str
    tracking_number: str
    lines: list[ItemQuantityDoc] = []
    shipped_at: datetime | None = None
    delivered_at: datetime | None = None
    promised_date: str | None = None
    delay_reason: str | None = None


class ShipToDoc(msgspec.Struct, frozen=True):
    ship_to_id: str | None = None
    name: str | None = None
    address: dict[str, str | None] | None = None


class OrderDoc(msgspec.Struct, frozen=True):
    order_id: str
    status: str
    customer_id: str
    channel: str
    lines: list[OrderLineDoc]
    shipments: list[ShipmentDoc] = []
    currency: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    policy: str | None = None
    ship_to: ShipToDoc | None = None
    hold_id: str | None = None
    hold_reason: str | None = None


class StatusChangeDoc(msgspec.Struct, frozen=True):
    to_status: str = msgspec.field(name="to")
    at: datetime
    cause: str
    from_status: str | None = msgspec.field(name="from", default=None)


class OrderHistoryDoc(msgspec.Struct, frozen=True):
    order_id: str
    entries: list[StatusChangeDoc]


class HistoryBatchDoc(msgspec.Struct, frozen=True):
    items: list[OrderHistoryDoc]


class RmaLineDoc(msgspec.Struct, frozen=True):
    sku: str
    authorized: int
    received: int = 0
    restocked: int = 0
    damaged: int = 0
    scrapped: int = 0
    returned_to_vendor: int = 0


class RmaDoc(msgspec.Struct, frozen=True):
    rma_id: str
    order_id: str
    customer_id: str
    status: str
    lines: list[RmaLineDoc]
    reason: str | None = None
    expires_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class InvoiceLineDoc(msgspec.Struct, frozen=True):
    sku: str
    quantity: int
    unit_price: MoneyDoc | None = None
    amount: MoneyDoc | None = None
    tax: MoneyDoc | None = None
    credited_quantity: int = 0


class InvoiceDoc(msgspec.Struct, frozen=True):
    invoice_id: str
    order_id: str
    status: str
    total: MoneyDoc
    shipment_id: str | None = None
    customer_id: str | None = None
    lines: list[InvoiceLineDoc] = []
    issued_at: datetime | None = None
    subtotal: MoneyDoc | None = None
    tax: MoneyDoc | None = None
    paid: MoneyDoc | None = None
    credited: MoneyDoc | None = None
    outstanding: MoneyDoc | None = None
    due_date: date | None = None
    overdue: bool = False


class CreditNoteLineDoc(msgspec.Struct, frozen=True):
    sku: str
    quantity: int
    amount: MoneyDoc
    tax: MoneyDoc | None = None


class CreditNoteDoc(msgspec.Struct, frozen=True):
    credit_note_id: str
    invoice_id: str
    order_id: str
    reason: str
    total: MoneyDoc
    lines: list[CreditNoteLineDoc] = []
    subtotal: MoneyDoc | None = None
    tax: MoneyDoc | None = None
    created_at: datetime | None = None
    rma_id: str | None = None


class AppliedDoc(msgspec.Struct, frozen=True):
    invoice_id: str
    amount: MoneyDoc


class PaymentDoc(msgspec.Struct, frozen=True):
    payment_id: str
    amount: MoneyDoc
    applied: list[AppliedDoc] = []
    received_on: date | None = None


class PageDoc(msgspec.Struct, frozen=True):
    """A keyset page of any process API; ``items`` decoded later by their own shape."""

    items: list[msgspec.Raw]
    next_cursor: str | None = None
    total_count: int | None = None


class AccountShipToDoc(msgspec.Struct, frozen=True):
    ship_to_id: str
    name: str | None = None
    address: dict[str, str | None] | None = None


class AccountDoc(msgspec.Struct, frozen=True):
    customer_id: str
    name: str
    status: str
    credit_limit: MoneyDoc
    exposure: MoneyDoc
    available: MoneyDoc | None = None
    currency: str | None = None
    customer_group: str | None = None
    payment_terms: str | None = None
    ship_tos: list[AccountShipToDoc] = []


class OpenInvoiceDoc(msgspec.Struct, frozen=True):
    invoice_id: str
    outstanding: MoneyDoc
    due_date: date | None = None
    overdue: bool = False


class BalanceDoc(msgspec.Struct, frozen=True):
    customer_id: str
    balance: MoneyDoc
    overdue: MoneyDoc
    unapplied_credit: MoneyDoc | None = None
    as_of: datetime | None = None
    open_invoices: list[OpenInvoiceDoc] | int | None = None


class StatementEntryDoc(msgspec.Struct, frozen=True):
    kind: str
    document_id: str
    at: datetime
    amount: MoneyDoc
    balance: MoneyDoc
    applied: MoneyDoc | None = None
    invoice_id: str | None = None


class StatementDoc(msgspec.Struct, frozen=True):
    customer_id: str
    currency: str
    entries: list[StatementEntryDoc]
    balance: MoneyDoc
    open_invoices: list[OpenInvoiceDoc]
    unapplied_credit: MoneyDoc
    overdue: MoneyDoc
    as_of: datetime


class CatalogItemDoc(msgspec.Struct, frozen=True):
    sku: str
    name: str
    list_price: MoneyDoc
    price: MoneyDoc
    base_uom: str | None = None
    tax_class: str | None = None


class LocationDoc(msgspec.Struct, frozen=True):
    location_id: str
    available_to_promise: int
    on_hand: int = 0
    allocated: int = 0
    buckets: dict[str, int] | None = None


class ChannelFiguresDoc(msgspec.Struct, frozen=True):
    channel: str
    channel_available: int
    customer_group: str | None = None


class AvailabilityDoc(msgspec.Struct, frozen=True):
    sku: str
    available_to_promise: int
    as_of: datetime
    locations: list[LocationDoc] = []
    buckets: dict[str, int] | None = None
    for_channel: ChannelFiguresDoc | None = None


class AvailabilityBatchDoc(msgspec.Struct, frozen=True):
    items: list[AvailabilityDoc]


class HoldLineDoc(msgspec.Struct, frozen=True):
    sku: str
    quantity: int


class HoldDoc(msgspec.Struct, frozen=True):
    hold_id: str
    channel: str
    status: str
    expires_at: datetime
    lines: list[HoldLineDoc]
    customer_id: str | None = None
    order_id: str | None = None
