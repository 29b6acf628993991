"""Canonical WMS contract (v1)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from shared.models import Identifier, Name, Quantity, Sku

Lot = Annotated[
    str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]*$")
]
Region = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Carrier = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
TrackingNumber = Annotated[
    str, msgspec.Meta(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")
]
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


class FulfillmentLineIn(msgspec.Struct, forbid_unknown_fields=True):
    sku: Sku
    quantity: Quantity


class FulfillmentOrderIn(msgspec.Struct, forbid_unknown_fields=True):
    order_id: Identifier
    warehouse_id: Identifier
    lines: Annotated[list[FulfillmentLineIn], msgspec.Meta(min_length=1, max_length=500)]


class FulfillmentLine(msgspec.Struct):
    sku: str
    quantity: int
    shipped: int


class FulfillmentOrder(msgspec.Struct):
    fulfillment_order_id: str
    order_id: str
    warehouse_id: str
    status: FulfillmentStatus
    lines: list[FulfillmentLine]
    created_at: datetime
    updated_at: datetime


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


class StockPosition(msgspec.Struct):
    warehouse_id: str
    sku: str
    lot: str | None
    on_hand: int
    updated_at: datetime
