"""The canonical event catalog: one frozen payload Struct per event type.

Evolution rules: a new field gets a default, a field's type never changes, and a
breaking change is a new ``type`` (``order.accepted.v2``).
"""

from __future__ import annotations

import msgspec


class Line(msgspec.Struct, frozen=True):
    sku: str
    quantity: int
    lot: str | None = None


class LocatedLine(msgspec.Struct, frozen=True):
    sku: str
    location_id: str
    quantity: int
    lot: str | None = None


class ReceiptPosted(msgspec.Struct, frozen=True):
    receipt_id: str
    warehouse_id: str
    lines: list[Line]


class FulfillmentReleased(msgspec.Struct, frozen=True):
    fulfillment_order_id: str
    order_id: str
    warehouse_id: str
    lines: list[Line]


class ShipmentDispatched(msgspec.Struct, frozen=True):
    shipment_id: str
    fulfillment_order_id: str
    order_id: str
    warehouse_id: str
    carrier: str
    tracking_number: str
    lines: list[Line]


class InventoryAllocated(msgspec.Struct, frozen=True):
    allocation_id: str
    order_id: str
    channel: str
    lines: list[LocatedLine]


class InventoryReleased(msgspec.Struct, frozen=True):
    allocation_id: str
    order_id: str
    reason: str
    lines: list[LocatedLine]


class OrderAccepted(msgspec.Struct, frozen=True):
    order_id: str
    customer_id: str
    channel: str
    status: str
    lines: list[Line]


class OrderStatusChanged(msgspec.Struct, frozen=True):
    order_id: str
    customer_id: str
    status: str
    previous_status: str


class OrderCancelled(msgspec.Struct, frozen=True):
    order_id: str
    customer_id: str
    reason: str


class Money(msgspec.Struct, frozen=True):
    amount_minor: int
    currency: str


class InvoiceIssued(msgspec.Struct, frozen=True):
    invoice_id: str
    erp_invoice_id: str
    order_id: str
    shipment_id: str
    customer_id: str
    total: Money


# Streams are named after the producing service; consumers filter on ``type``.
STREAM_WMS = "tally.wms"
STREAM_ERP = "tally.erp"
STREAM_AVAILABILITY = "tally.availability"
STREAM_ORDERS = "tally.orders"
STREAM_BILLING = "tally.billing"

EVENT_TYPES: dict[str, type[msgspec.Struct]] = {
    "receipt.posted": ReceiptPosted,
    "fulfillment.released": FulfillmentReleased,
    "shipment.dispatched": ShipmentDispatched,
    "inventory.allocated": InventoryAllocated,
    "inventory.released": InventoryReleased,
    "order.accepted": OrderAccepted,
    "order.status_changed": OrderStatusChanged,
    "order.cancelled": OrderCancelled,
    "invoice.issued": InvoiceIssued,
}
