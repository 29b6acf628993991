"""The canonical event catalog: one frozen payload Struct per event type.

Evolution rules: a new field gets a default, a field's type never changes, and a
breaking change is a new ``type`` (``order.accepted.v2``).

Every payload is a tagged Struct (``event_type`` in its JSON names the CloudEvents
``type``), so :data:`Payload` is a tagged union that decodes any catalogued event.
"""

from __future__ import annotations

from typing import Literal

import msgspec


class CatalogEvent(msgspec.Struct, frozen=True, tag_field="event_type"):
    """Base of every event payload; subclasses set ``tag`` to their event type."""


class Line(msgspec.Struct, frozen=True):
    sku: str
    quantity: int
    lot: str | None = None


class LocatedLine(msgspec.Struct, frozen=True):
    sku: str
    location_id: str
    quantity: int
    lot: str | None = None


class ReceiptPosted(CatalogEvent, frozen=True, tag="receipt.posted"):
    receipt_id: str
    warehouse_id: str
    lines: list[Line]
    # The inbound documents the receipt fulfils, when the warehouse knows them: the
    # ERP posting of the goods receipt closes their lines.
    asn_id: str | None = None
    purchase_order_id: str | None = None


class FulfillmentReleased(CatalogEvent, frozen=True, tag="fulfillment.released"):
    fulfillment_order_id: str
    order_id: str
    warehouse_id: str
    lines: list[Line]


class ShipmentDispatched(CatalogEvent, frozen=True, tag="shipment.dispatched"):
    shipment_id: str
    fulfillment_order_id: str
    order_id: str
    warehouse_id: str
    carrier: str
    tracking_number: str
    lines: list[Line]


class ShipmentDelivered(CatalogEvent, frozen=True, tag="shipment.delivered"):
    """The carrier delivered the shipment (subject ``shipment:{id}``, sequence 2)."""

    shipment_id: str
    fulfillment_order_id: str
    order_id: str
    warehouse_id: str
    delivered_at: str  # RFC 3339


class ShipmentDelayed(CatalogEvent, frozen=True, tag="shipment.delayed"):
    """A carrier exception: the shipment will arrive late, by ``promised_date``
    (subject ``shipment:{id}``; unordered: the latest promise is the one with the
    latest ``reported_at``)."""

    shipment_id: str
    fulfillment_order_id: str
    order_id: str
    warehouse_id: str
    reason: str
    promised_date: str  # ISO date
    reported_at: str  # RFC 3339


class PickPutAway(CatalogEvent, frozen=True, tag="pick.put_away"):
    """Picked units of a fulfillment order went back to free stock (an un-pick)."""

    put_away_id: str
    fulfillment_order_id: str
    order_id: str
    warehouse_id: str
    lines: list[Line]


class PickShorted(CatalogEvent, frozen=True, tag="pick.shorted"):
    """The warehouse could not find units of a fulfillment order: its lines shrink by
    ``lines`` (the order decides to backorder or cancel them); the missing stock is
    moved to ``hold`` by an ``inventory.adjusted`` of the same transaction."""

    shortage_id: str
    fulfillment_order_id: str
    order_id: str
    warehouse_id: str
    lines: list[Line]


class InventoryAllocated(CatalogEvent, frozen=True, tag="inventory.allocated"):
    allocation_id: str
    order_id: str
    channel: str
    lines: list[LocatedLine]


class InventoryReleased(CatalogEvent, frozen=True, tag="inventory.released"):
    allocation_id: str
    order_id: str
    reason: str
    lines: list[LocatedLine]


class InventoryReplenished(CatalogEvent, frozen=True, tag="inventory.replenished"):
    """Available-to-promise of these skus rose (a receipt, a restock, a positive
    adjustment, a released allocation or hold, ...): backorders may fill now."""

    skus: list[str]
    reason: str


class OrderAccepted(CatalogEvent, frozen=True, tag="order.accepted"):
    order_id: str
    customer_id: str
    channel: str
    status: str
    lines: list[Line]


class OrderStatusChanged(CatalogEvent, frozen=True, tag="order.status_changed"):
    order_id: str
    customer_id: str
    status: str
    previous_status: str
    cause: str = ""  # why it moved (``stock_received``, ``credit_hold``, ``cancelled``, ...)


class OrderCancelled(CatalogEvent, frozen=True, tag="order.cancelled"):
    order_id: str
    customer_id: str
    reason: str


class Money(msgspec.Struct, frozen=True):
    amount_minor: int
    currency: str


class InvoiceIssued(CatalogEvent, frozen=True, tag="invoice.issued"):
    """``total`` includes ``tax``; ``due_date`` (ISO date) follows the customer's
    payment terms."""

    invoice_id: str
    erp_invoice_id: str
    order_id: str
    shipment_id: str
    customer_id: str
    total: Money
    tax: Money | None = None
    due_date: str | None = None
    lines: list[Line] = []


class InvoiceStatusChanged(CatalogEvent, frozen=True, tag="invoice.status_changed"):
    """An invoice moved (``issued`` -> ``partially_paid`` -> ``paid``, or
    ``credited`` when credit notes cover it): subject ``invoice:{id}``, sequence
    increasing per invoice. ``outstanding`` = total - credited - paid."""

    invoice_id: str
    order_id: str
    customer_id: str
    status: str
    outstanding: Money


class AppliedAmount(msgspec.Struct, frozen=True):
    invoice_id: str
    amount: Money


class PaymentReceived(CatalogEvent, frozen=True, tag="payment.received"):
    """A remittance booked in the ERP: what it paid of which invoices, and what was
    left unapplied as the customer's credit."""

    payment_id: str
    erp_payment_id: str
    customer_id: str
    amount: Money
    applied: list[AppliedAmount]
    unapplied: Money


StockStatus = Literal["available", "quality_control", "damaged", "hold"]
Disposition = Literal["restock", "damaged", "scrap", "return_to_vendor"]


class AdjustedLine(msgspec.Struct, frozen=True):
    """A change of physical stock in one status; a status change is two lines."""

    sku: str
    quantity_delta: int
    status: StockStatus = "available"
    lot: str | None = None


class InventoryAdjusted(CatalogEvent, frozen=True, tag="inventory.adjusted"):
    adjustment_id: str
    warehouse_id: str
    reason: str  # cycle_count, damage, found, lost, quality_status, correction
    lines: list[AdjustedLine]


class PickConfirmed(CatalogEvent, frozen=True, tag="pick.confirmed"):
    pick_id: str
    fulfillment_order_id: str
    order_id: str
    warehouse_id: str
    lines: list[Line]


class ReturnReceived(CatalogEvent, frozen=True, tag="return.received"):
    """Returned goods received into quality control against an RMA (``rma_id``)."""

    return_id: str
    order_id: str
    warehouse_id: str
    lines: list[Line]
    rma_id: str | None = None


class DispositionedLine(msgspec.Struct, frozen=True):
    sku: str
    quantity: int
    disposition: Disposition
    lot: str | None = None


class ReturnDispositioned(CatalogEvent, frozen=True, tag="return.dispositioned"):
    """Inspected units given their final disposition (units kept in quality control
    are not in it until a later release dispositions them: ``released`` true).
    ``disposition_id`` names this one decision: a credit or a posting made for it is
    made once, however often the event arrives."""

    return_id: str
    order_id: str
    warehouse_id: str
    lines: list[DispositionedLine]
    rma_id: str | None = None
    disposition_id: str | None = None
    released: bool = False


class CreditNoteIssued(CatalogEvent, frozen=True, tag="credit_note.issued"):
    """``reason`` is ``return`` (then ``return_id``, ``rma_id`` name it) or
    ``price_correction`` (``return_id`` empty). ``total`` includes ``tax``."""

    credit_note_id: str
    erp_credit_note_id: str
    return_id: str
    order_id: str
    customer_id: str
    total: Money
    invoice_id: str = ""
    reason: str = "return"
    rma_id: str | None = None
    tax: Money | None = None
    lines: list[Line] = []


class ReturnAuthorized(CatalogEvent, frozen=True, tag="return.authorized"):
    """An RMA: the customer may send these units of a shipped order back."""

    rma_id: str
    order_id: str
    customer_id: str
    lines: list[Line]
    expires_at: str  # ISO datetime


class ReturnStatusChanged(CatalogEvent, frozen=True, tag="return.status_changed"):
    """An RMA moved: ``authorized`` -> ``received`` -> ``inspected`` -> ``closed``, or
    ``rejected`` / ``expired``. Subject ``rma:{id}``, sequence increasing."""

    rma_id: str
    order_id: str
    customer_id: str
    status: str


class PurchaseOrderLine(msgspec.Struct, frozen=True):
    """One line of a purchase order as the ERP sees it now. ``open_quantity`` is what
    is still to be shipped by the supplier: ordered - in transit on ASNs - received."""

    sku: str
    warehouse_id: str
    ordered: int
    open_quantity: int
    expected_date: str | None = None  # ISO date


class PurchaseOrderChanged(CatalogEvent, frozen=True, tag="purchase_order.changed"):
    """The whole purchase order after a change (subject ``purchase_order:{id}``,
    sequence = its version): consumers replace what they knew of it."""

    purchase_order_id: str
    supplier_id: str
    status: str  # open, closed, cancelled
    lines: list[PurchaseOrderLine]


class AsnShipped(CatalogEvent, frozen=True, tag="asn.shipped"):
    """An advance shipping notice: goods in transit to a warehouse (subject
    ``asn:{id}``, sequence 1)."""

    asn_id: str
    purchase_order_id: str
    warehouse_id: str
    expected_date: str  # ISO date
    lines: list[Line]


class AsnReceived(CatalogEvent, frozen=True, tag="asn.received"):
    """The ASN's goods were received (subject ``asn:{id}``, sequence 2); the receipt
    itself raises on-hand through the WMS's ``receipt.posted``."""

    asn_id: str
    purchase_order_id: str
    warehouse_id: str
    receipt_id: str
    lines: list[Line]


class GoodsIssuePosted(CatalogEvent, frozen=True, tag="goods_issue.posted"):
    """The ERP booked a shipment's goods issue (subject ``goods_issue:{shipment_id}``,
    sequence 1): the units left its financial stock, and the shipment may be invoiced.
    ``order_id`` is the sales order the goods went out for, when the poster named it;
    ``lines`` are the units issued per sku (positive)."""

    posting_id: str
    shipment_id: str
    warehouse_id: str
    lines: list[Line]
    posted_at: str  # RFC 3339
    order_id: str | None = None


# Streams are named after the producing service; consumers filter on ``type``.
STREAM_WMS = "tally.wms"
STREAM_ERP = "tally.erp"
STREAM_AVAILABILITY = "tally.availability"
STREAM_ORDERS = "tally.orders"
STREAM_BILLING = "tally.billing"

Payload = (
    ReceiptPosted
    | InventoryAdjusted
    | InventoryAllocated
    | InventoryReleased
    | OrderAccepted
    | OrderStatusChanged
    | OrderCancelled
    | FulfillmentReleased
    | PickConfirmed
    | ShipmentDispatched
    | ShipmentDelivered
    | ShipmentDelayed
    | PickPutAway
    | PickShorted
    | InventoryReplenished
    | InvoiceIssued
    | ReturnReceived
    | ReturnDispositioned
    | CreditNoteIssued
    | InvoiceStatusChanged
    | PaymentReceived
    | ReturnAuthorized
    | ReturnStatusChanged
    | PurchaseOrderChanged
    | AsnShipped
    | AsnReceived
    | GoodsIssuePosted
)

EVENT_TYPES: dict[str, type[CatalogEvent]] = {
    str(cls.__struct_config__.tag): cls for cls in Payload.__args__
}


def decode_payload(data: bytes) -> Payload:
    """Decode any catalogued payload by its ``event_type`` tag."""
    decoded: Payload = msgspec.json.decode(data, type=Payload)
    return decoded
