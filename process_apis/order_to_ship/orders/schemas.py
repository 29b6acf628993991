"""Order-to-ship contract (v1): the shapes of docs/decisions/0002, grown by the order
lifecycle of decision 0026 (additive: every earlier field keeps its name and type)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from process_apis.order_to_ship.lifecycle.states import OrderStatus
from shared.models import SKU_PATTERN, Identifier, ItemKey, ItemRefusal, Money, Quantity, Sku, Text

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
Reason = Text
Country = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{2}$", examples=["US"])]
AddressText = Text


class OrderLineIn(msgspec.Struct, forbid_unknown_fields=True):
    sku: Sku
    quantity: Quantity


class AddressIn(msgspec.Struct, forbid_unknown_fields=True):
    line1: AddressText
    city: AddressText
    postal_code: Annotated[
        str, msgspec.Meta(min_length=1, max_length=20, pattern=r"^[A-Za-z0-9][A-Za-z0-9 \-]*$")
    ]
    country: Country
    line2: AddressText | None = None


class ShipToIn(msgspec.Struct, forbid_unknown_fields=True):
    """One of the customer's ship-tos (``ship_to_id``), or an address with its region."""

    ship_to_id: Identifier | None = None
    name: Text | None = None
    address: AddressIn | None = None
    region: Identifier | None = None


class OrderIn(msgspec.Struct, forbid_unknown_fields=True):
    customer_id: Identifier
    channel: Channel
    lines: Annotated[list[OrderLineIn], msgspec.Meta(min_length=1, max_length=100)]
    policy: Policy = "reject"
    ship_to: ShipToIn | None = None
    hold_id: Identifier | None = None  # the customer's cart hold to convert, keeping its units


class LineChangeIn(msgspec.Struct, forbid_unknown_fields=True):
    sku: Sku
    quantity: Quantity


class LineCancellationIn(msgspec.Struct, forbid_unknown_fields=True):
    lines: Annotated[list[LineChangeIn], msgspec.Meta(min_length=1, max_length=100)]
    reason: Reason = "requested"


class DecisionIn(msgspec.Struct, forbid_unknown_fields=True):
    reason: Reason = "operator decision"


class HoldReleasesIn(msgspec.Struct, forbid_unknown_fields=True):
    """Held orders an operator releases together, for one reason."""

    order_ids: Annotated[list[Identifier], msgspec.Meta(min_length=1, max_length=100)]
    reason: Reason = "operator decision"


class OrderLine(msgspec.Struct):
    sku: str
    quantity: int
    allocated: int
    backordered: int
    shipped: int
    unit_price: Money
    released: int = 0
    picked: int = 0
    delivered: int = 0
    cancelled: int = 0
    invoiced: int = 0
    returned: int = 0


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
    delivered_at: datetime | None = None
    promised_date: str | None = None
    delay_reason: str | None = None


class FulfillmentRef(msgspec.Struct):
    fulfillment_order_id: str
    warehouse_id: str


class ShipTo(msgspec.Struct):
    region: str | None = None
    ship_to_id: str | None = None
    name: str | None = None
    address: dict[str, str] | None = None


class CreditCheck(msgspec.Struct):
    """The figures acceptance decided on: the ERP's exposure plus orders it has not
    heard of yet, and this order's value, against the limit."""

    credit_limit: Money
    exposure: Money
    order_value: Money


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
    ship_to: ShipTo | None = None
    customer_group: str | None = None
    hold_id: str | None = None
    hold_reason: str | None = None
    credit: CreditCheck | None = None
    releases_pending: int = 0  # releases decided and not yet at the WMS (it may be down)


class StatusChange(msgspec.Struct):
    from_status: str | None = msgspec.field(name="from")
    to_status: str = msgspec.field(name="to")
    at: datetime
    cause: str
    correlation_id: str | None


MAX_BATCH_ORDERS = 100


class OrderBatchItemIn(msgspec.Struct, forbid_unknown_fields=True):
    """One order of a batch (an EDI partner's purchase order file, a marketplace's order
    feed): the single placement's body, with the Idempotency-Key that call would carry."""

    idempotency_key: ItemKey
    order: OrderIn


class OrderBatchIn(msgspec.Struct, forbid_unknown_fields=True):
    """Up to 100 orders; their keys differ (else 422 ``duplicate-idempotency-key``)."""

    orders: Annotated[
        list[OrderBatchItemIn], msgspec.Meta(min_length=1, max_length=MAX_BATCH_ORDERS)
    ]


class OrderBatchResult(msgspec.Struct, omit_defaults=True):
    """Per item, in the batch's order: the status and order its single placement
    answered (201 placed, 202 placed and pending allocation; a key seen before replays
    its answer), or its refusal (the problem that call would answer)."""

    idempotency_key: str
    status: int | None = None
    order: Order | None = None
    refusal: ItemRefusal | None = None


class HoldReleaseResult(msgspec.Struct, omit_defaults=True):
    """Per order, in the request's order: the released order, or the refusal its
    single ``release-hold`` would answer."""

    order_id: str
    order: Order | None = None
    refusal: ItemRefusal | None = None


class HoldReleases(msgspec.Struct):
    """The answer of ``POST /orders/v1/orders/hold-releases``."""

    results: list[HoldReleaseResult]


class OrderBatch(msgspec.Struct):
    """The answer of ``POST /orders/v1/orders/batch``."""

    results: list[OrderBatchResult]
