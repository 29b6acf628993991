"""Canonical WMS contract (v1)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

import msgspec

from shared.models import SKU_PATTERN, Identifier, ItemKey, ItemRefusal, Name, Quantity, Sku, Text

Lot = Identifier
Region = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Carrier = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
TrackingNumber = Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=SKU_PATTERN)]
AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]
FulfillmentStatus = Literal["released", "partially_shipped", "shipped", "cancelled"]


class WarehouseIn(msgspec.Struct, forbid_unknown_fields=True):
    warehouse_id: Identifier
    name: Name
    region: Region | None = None


class Warehouse(msgspec.Struct):
    warehouse_id: str
    name: str
    region: str | None
    created_at: datetime


class ReceiptLineIn(msgspec.Struct, forbid_unknown_fields=True):
    sku: Sku
    quantity: Quantity
    lot: Lot | None = None


class ReceiptIn(msgspec.Struct, forbid_unknown_fields=True):
    warehouse_id: Identifier
    lines: Annotated[list[ReceiptLineIn], msgspec.Meta(min_length=1, max_length=500)]
    # The inbound documents (ERP ids) the receipt fulfils, when the dock knows them.
    asn_id: Identifier | None = None
    purchase_order_id: Identifier | None = None


class StockLine(msgspec.Struct):
    """A quantity of one sku, with its lot (null when the stock has none)."""

    sku: str
    quantity: int
    lot: str | None = None


class Receipt(msgspec.Struct):
    receipt_id: str
    warehouse_id: str
    lines: list[StockLine]
    received_at: datetime
    asn_id: str | None = None
    purchase_order_id: str | None = None


class FulfillmentLineIn(msgspec.Struct, forbid_unknown_fields=True):
    sku: Sku
    quantity: Quantity


class FulfillmentOrderIn(msgspec.Struct, forbid_unknown_fields=True):
    order_id: Identifier
    warehouse_id: Identifier
    lines: Annotated[list[FulfillmentLineIn], msgspec.Meta(min_length=1, max_length=500)]


class FulfillmentOrderBatchItemIn(FulfillmentOrderIn, forbid_unknown_fields=True):
    """One fulfillment order of a batch, with the Idempotency-Key its single create
    would carry."""

    key: ItemKey

    def order(self) -> FulfillmentOrderIn:
        """The item as the single create's body (what its key's fingerprint is of)."""
        return FulfillmentOrderIn(self.order_id, self.warehouse_id, self.lines)


class FulfillmentOrderBatchIn(msgspec.Struct, forbid_unknown_fields=True):
    """Up to 100 fulfillment orders; their keys differ (else 422 ``duplicate-key``)."""

    fulfillment_orders: Annotated[
        list[FulfillmentOrderBatchItemIn], msgspec.Meta(min_length=1, max_length=100)
    ]


class FulfillmentLine(msgspec.Struct):
    """``quantity`` is what the order still asks for (cancelled and shorted units
    leave it); ``picked`` counts units picked and not put away, shipped ones included."""

    sku: str
    quantity: int
    shipped: int
    picked: int = 0


class FulfillmentOrder(msgspec.Struct):
    fulfillment_order_id: str
    order_id: str
    warehouse_id: str
    status: FulfillmentStatus
    lines: list[FulfillmentLine]
    created_at: datetime
    updated_at: datetime


class FulfillmentOrderBatchResult(msgspec.Struct):
    """Per item, in the batch's order: its fulfillment order (created, or replayed for a
    key seen before), or its refusal."""

    key: str
    fulfillment_order: FulfillmentOrder | None = None
    refusal: ItemRefusal | None = None


class FulfillmentOrderBatch(msgspec.Struct):
    results: list[FulfillmentOrderBatchResult]


class ShipmentLineIn(msgspec.Struct, forbid_unknown_fields=True):
    sku: Sku
    quantity: Quantity
    lot: Lot | None = None


class ShipmentIn(msgspec.Struct, forbid_unknown_fields=True):
    carrier: Carrier
    tracking_number: TrackingNumber
    lines: Annotated[list[ShipmentLineIn], msgspec.Meta(min_length=1, max_length=500)]


class Shipment(msgspec.Struct):
    shipment_id: str
    fulfillment_order_id: str
    order_id: str
    warehouse_id: str
    carrier: str
    tracking_number: str
    lines: list[StockLine]
    shipped_at: datetime
    delivered_at: datetime | None = None
    # The carrier's latest promise after an exception, and why (None until delayed).
    promised_date: date | None = None
    delay_reason: str | None = None


class StockPosition(msgspec.Struct):
    """Physical stock of one (warehouse, sku, lot). ``on_hand`` is everything on the
    shelves; ``quality_control``, ``damaged``, ``hold`` and ``picked`` are parts of it,
    and ``available`` is what may still be picked."""

    warehouse_id: str
    sku: str
    lot: str | None
    on_hand: int
    updated_at: datetime
    quality_control: int = 0
    damaged: int = 0
    hold: int = 0
    picked: int = 0
    available: int = 0


StockStatus = Literal["available", "quality_control", "damaged", "hold"]
Disposition = Literal["restock", "damaged", "scrap", "return_to_vendor"]
# A disposition call may also keep units in quality control (``held``) until a release.
InspectionOutcome = Literal["restock", "quality_control", "damaged", "scrap", "return_to_vendor"]
AdjustmentReason = Literal["damage", "found", "lost", "quality_status", "correction"]
QuantityDelta = Annotated[int, msgspec.Meta(ge=-1_000_000_000, le=1_000_000_000)]
Count = Annotated[int, msgspec.Meta(ge=0, le=1_000_000_000)]
Note = Annotated[str, msgspec.Meta(max_length=500)]


class PickLineIn(msgspec.Struct, forbid_unknown_fields=True):
    sku: Sku
    quantity: Quantity
    lot: Lot | None = None


class PickIn(msgspec.Struct, forbid_unknown_fields=True):
    lines: Annotated[list[PickLineIn], msgspec.Meta(min_length=1, max_length=500)]


class Pick(msgspec.Struct):
    pick_id: str
    fulfillment_order_id: str
    order_id: str
    warehouse_id: str
    lines: list[StockLine]
    picked_at: datetime


class AdjustmentLineIn(msgspec.Struct, forbid_unknown_fields=True):
    """Physical stock in one status changes by ``quantity_delta`` (non-zero). A
    status change is two lines: minus in one status, plus in the other."""

    sku: Sku
    quantity_delta: QuantityDelta
    status: StockStatus = "available"
    lot: Lot | None = None


class AdjustmentIn(msgspec.Struct, forbid_unknown_fields=True):
    warehouse_id: Identifier
    reason: AdjustmentReason
    lines: Annotated[list[AdjustmentLineIn], msgspec.Meta(min_length=1, max_length=500)]
    note: Note | None = None


class AdjustmentLine(msgspec.Struct):
    sku: str
    quantity_delta: int
    status: StockStatus
    lot: str | None = None


class Adjustment(msgspec.Struct):
    adjustment_id: str
    warehouse_id: str
    reason: str
    lines: list[AdjustmentLine]
    created_at: datetime
    note: str | None = None


class CycleCountIn(msgspec.Struct, forbid_unknown_fields=True):
    """Compare-and-set of one (warehouse, sku, lot)'s physical on-hand: the count
    replaces ``expected_quantity``, which must still be the WMS's figure."""

    warehouse_id: Identifier
    sku: Sku
    expected_quantity: Count
    counted_quantity: Count
    lot: Lot | None = None


class CycleCount(msgspec.Struct):
    cycle_count_id: str
    warehouse_id: str
    sku: str
    lot: str | None
    expected_quantity: int
    counted_quantity: int
    quantity_delta: int
    adjustment_id: str | None
    counted_at: datetime


class ReturnLineIn(msgspec.Struct, forbid_unknown_fields=True):
    sku: Sku
    quantity: Quantity
    lot: Lot | None = None


class ReturnIn(msgspec.Struct, forbid_unknown_fields=True):
    """A receipt of returned goods against a return authorization (``rma_id``, required:
    ADR 0032). ``order_id`` may be omitted (the RMA's); when given it must be the RMA's."""

    warehouse_id: Identifier
    lines: Annotated[list[ReturnLineIn], msgspec.Meta(min_length=1, max_length=500)]
    order_id: Identifier | None = None
    rma_id: Identifier | None = None


class ReturnLine(msgspec.Struct):
    """``held`` counts units an inspection kept in quality control (unsellable) until a
    release dispositions them; they are part of neither ``restocked`` nor the others."""

    sku: str
    quantity: int
    lot: str | None
    restocked: int = 0
    damaged: int = 0
    scrapped: int = 0
    returned_to_vendor: int = 0
    held: int = 0


class ReturnReceipt(msgspec.Struct):
    return_id: str
    order_id: str
    warehouse_id: str
    status: Literal["received", "dispositioned"]
    lines: list[ReturnLine]
    received_at: datetime
    updated_at: datetime
    rma_id: str | None = None


class DispositionLineIn(msgspec.Struct, forbid_unknown_fields=True):
    sku: Sku
    quantity: Quantity
    disposition: InspectionOutcome
    lot: Lot | None = None


class DispositionIn(msgspec.Struct, forbid_unknown_fields=True):
    lines: Annotated[list[DispositionLineIn], msgspec.Meta(min_length=1, max_length=500)]


class ReleaseLineIn(msgspec.Struct, forbid_unknown_fields=True):
    """Held units of a return line given their final disposition."""

    sku: Sku
    quantity: Quantity
    lot: Lot | None = None
    disposition: Disposition = "restock"


class ReleaseIn(msgspec.Struct, forbid_unknown_fields=True):
    lines: Annotated[list[ReleaseLineIn], msgspec.Meta(min_length=1, max_length=500)]


RmaStatus = Literal["authorized", "cancelled"]


class ReturnAuthorizationLineIn(msgspec.Struct, forbid_unknown_fields=True):
    sku: Sku
    quantity: Quantity


class ReturnAuthorizationIn(msgspec.Struct, forbid_unknown_fields=True):
    """The order service's RMA as the dock may receive against it (the whole of it,
    replacing what the WMS had: PUT)."""

    order_id: Identifier
    lines: Annotated[list[ReturnAuthorizationLineIn], msgspec.Meta(min_length=1, max_length=500)]
    expires_at: AwareDatetime
    status: RmaStatus = "authorized"


class ReturnAuthorizationLine(msgspec.Struct):
    sku: str
    authorized: int
    received: int


class ReturnAuthorization(msgspec.Struct):
    rma_id: str
    order_id: str
    status: RmaStatus
    expires_at: datetime
    lines: list[ReturnAuthorizationLine]
    updated_at: datetime


class PutAwayLineIn(msgspec.Struct, forbid_unknown_fields=True):
    sku: Sku
    quantity: Quantity
    lot: Lot | None = None


class PutAwayIn(msgspec.Struct, forbid_unknown_fields=True):
    lines: Annotated[list[PutAwayLineIn], msgspec.Meta(min_length=1, max_length=500)]


class PutAway(msgspec.Struct):
    """Picked units of a fulfillment order returned to free stock (an un-pick)."""

    put_away_id: str
    fulfillment_order_id: str
    order_id: str
    warehouse_id: str
    lines: list[StockLine]
    put_away_at: datetime


class LineQuantityIn(msgspec.Struct, forbid_unknown_fields=True):
    sku: Sku
    quantity: Quantity


class LineCancellationIn(msgspec.Struct, forbid_unknown_fields=True):
    lines: Annotated[list[LineQuantityIn], msgspec.Meta(min_length=1, max_length=500)]


class ShortageIn(msgspec.Struct, forbid_unknown_fields=True):
    lines: Annotated[list[LineQuantityIn], msgspec.Meta(min_length=1, max_length=500)]


class LineQuantity(msgspec.Struct):
    sku: str
    quantity: int


class Shortage(msgspec.Struct):
    """Units of a fulfillment order the warehouse could not find: its lines shrank by
    ``lines``. ``held`` is the free stock moved to ``hold`` until counted (by the
    adjustment ``adjustment_id``; none when there was no free stock left)."""

    shortage_id: str
    fulfillment_order_id: str
    order_id: str
    warehouse_id: str
    lines: list[LineQuantity]
    reported_at: datetime
    held: list[StockLine] = msgspec.field(default_factory=list)
    adjustment_id: str | None = None


DelayReason = Text


class DeliveryIn(msgspec.Struct, forbid_unknown_fields=True):
    delivered_at: AwareDatetime | None = None


class ShipmentBatchItemIn(msgspec.Struct, forbid_unknown_fields=True):
    """One shipment of a batch: the single dispatch's path id and body, with the
    Idempotency-Key that call would carry."""

    idempotency_key: ItemKey
    fulfillment_order_id: Identifier
    shipment: ShipmentIn


class ShipmentBatchIn(msgspec.Struct, forbid_unknown_fields=True):
    """Up to 100 shipments; their keys differ (else 422 ``duplicate-idempotency-key``)."""

    shipments: Annotated[list[ShipmentBatchItemIn], msgspec.Meta(min_length=1, max_length=100)]


class DeliveryBatchItemIn(msgspec.Struct, forbid_unknown_fields=True):
    """One delivery of a batch: the single delivery's path id and body, under its own
    idempotency key."""

    idempotency_key: ItemKey
    shipment_id: Identifier
    delivery: DeliveryIn


class DeliveryBatchIn(msgspec.Struct, forbid_unknown_fields=True):
    """Up to 100 deliveries; their keys differ (else 422 ``duplicate-idempotency-key``)."""

    deliveries: Annotated[list[DeliveryBatchItemIn], msgspec.Meta(min_length=1, max_length=100)]


class ShipmentBatchResult(msgspec.Struct):
    """Per item, in the batch's order: the shipment its single call answered (dispatched
    or delivered, or replayed for a key seen before), or its refusal."""

    idempotency_key: str
    shipment: Shipment | None = None
    refusal: ItemRefusal | None = None


class ShipmentBatch(msgspec.Struct):
    """The answer of ``POST /wms/v1/shipments/batch`` and ``/wms/v1/deliveries/batch``."""

    results: list[ShipmentBatchResult]


class DelayIn(msgspec.Struct, forbid_unknown_fields=True):
    reason: DelayReason
    promised_date: date


class Delay(msgspec.Struct):
    """One carrier exception of a shipment, numbered from 1 (what shipment.delayed says)."""

    number: int
    reason: str
    promised_date: date
    reported_at: datetime
