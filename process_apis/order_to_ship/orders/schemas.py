"""Order-to-ship contract (v1): the shapes of docs/decisions/0002."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from shared.models import SKU_PATTERN, Identifier, Money, Quantity, Sku

Channel = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=32,
        pattern=SKU_PATTERN,
        examples=["b2b_portal"],
        description="The sales channel the order came through.",
    ),
]
Policy = Literal["reject", "ship_complete", "partial"]
OrderStatus = Literal[
    "pending", "released", "backordered", "partially_shipped", "shipped", "cancelled"
]


class OrderLineIn(msgspec.Struct, forbid_unknown_fields=True):
    sku: Sku
    quantity: Quantity


class OrderIn(msgspec.Struct, forbid_unknown_fields=True):
    customer_id: Identifier
    channel: Channel
    lines: Annotated[list[OrderLineIn], msgspec.Meta(min_length=1, max_length=100)]
    policy: Policy = "reject"


class OrderLine(msgspec.Struct):
    sku: str
    quantity: int
    allocated: int
    backordered: int
    shipped: int
    unit_price: Money


class ShipmentLine(msgspec.Struct):
    sku: str
    quantity: int


class OrderShipment(msgspec.Struct):
    shipment_id: str
    fulfillment_order_id: str
    warehouse_id: str
    carrier: str
    tracking_number: str
    lines: list[ShipmentLine]
    shipped_at: datetime


class FulfillmentRef(msgspec.Struct):
    fulfillment_order_id: str
    warehouse_id: str


class Order(msgspec.Struct):
    order_id: str
    status: OrderStatus
    customer_id: str
    channel: str
    policy: Policy
    currency: str
    lines: list[OrderLine]
    shipments: list[OrderShipment]
    fulfillment_orders: list[FulfillmentRef]
    version: int
    created_at: datetime
    updated_at: datetime
