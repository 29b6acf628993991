"""GraphQL object types of the portal (camelCase on the wire, as strawberry names
them) and their mapping from the process APIs' documents. No rule lives here: each
field is a process API's field under its portal name."""

from __future__ import annotations

from datetime import datetime
from typing import NewType

import strawberry

from experience_apis.portal.context import PortalContext
from experience_apis.portal.upstream import (
    AvailabilityDoc,
    InvoiceDoc,
    ItemQuantityDoc,
    LocationDoc,
    MoneyDoc,
    OrderDoc,
    OrderLineDoc,
    OrderPageDoc,
    ShipmentDoc,
)

# Money in minor units can pass GraphQL's 32-bit Int (USD 21,474,836.47); see schema.py.
Long = NewType("Long", int)


@strawberry.type(description="An amount in the currency's minor unit (cents for USD).")
class Money:
    amount_minor: Long
    currency: str = strawberry.field(description="ISO 4217 code, e.g. USD.")

    @classmethod
    def of(cls, doc: MoneyDoc | None) -> Money | None:
        return cls.exactly(doc) if doc else None

    @classmethod
    def exactly(cls, doc: MoneyDoc) -> Money:
        return cls(amount_minor=Long(doc.amount_minor), currency=doc.currency)


@strawberry.type
class ItemQuantity:
    sku: str
    quantity: int

    @classmethod
    def of(cls, doc: ItemQuantityDoc) -> ItemQuantity:
        return cls(sku=doc.sku, quantity=doc.quantity)


@strawberry.type(description="One line of an order, with how much of it is allocated and shipped.")
class OrderLine:
    sku: str
    quantity: int
    allocated: int
    backordered: int
    shipped: int
    unit_price: Money | None

    @classmethod
    def of(cls, doc: OrderLineDoc) -> OrderLine:
        return cls(
            sku=doc.sku,
            quantity=doc.quantity,
            allocated=doc.allocated,
            backordered=doc.backordered,
            shipped=doc.shipped,
            unit_price=Money.of(doc.unit_price),
        )


@strawberry.type
class Shipment:
    shipment_id: strawberry.ID
    carrier: str
    tracking_number: str
    lines: list[ItemQuantity]
    shipped_at: datetime | None

    @classmethod
    def of(cls, doc: ShipmentDoc) -> Shipment:
        return cls(
            shipment_id=strawberry.ID(doc.shipment_id),
            carrier=doc.carrier,
            tracking_number=doc.tracking_number,
            lines=[ItemQuantity.of(line) for line in doc.lines],
            shipped_at=doc.shipped_at,
        )


@strawberry.type
class InvoiceLine:
    sku: str
    quantity: int
    unit_price: Money | None
    amount: Money | None


@strawberry.type(description="An invoice issued for one shipment of an order.")
class Invoice:
    id: strawberry.ID
    order_id: strawberry.ID
    shipment_id: strawberry.ID | None
    status: str
    total: Money
    lines: list[InvoiceLine]
    issued_at: datetime | None

    @classmethod
    def of(cls, doc: InvoiceDoc) -> Invoice:
        return cls(
            id=strawberry.ID(doc.invoice_id),
            order_id=strawberry.ID(doc.order_id),
            shipment_id=strawberry.ID(doc.shipment_id) if doc.shipment_id else None,
            status=doc.status,
            total=Money.exactly(doc.total),
            lines=[
                InvoiceLine(
                    sku=line.sku,
                    quantity=line.quantity,
                    unit_price=Money.of(line.unit_price),
                    amount=Money.of(line.amount),
                )
                for line in doc.lines
            ],
            issued_at=doc.issued_at,
        )


async def order_invoices(
    root: Order, info: strawberry.Info[PortalContext, None]
) -> list[Invoice] | None:
    docs = await info.context.caller.invoices.load(str(root.id))
    return [Invoice.of(doc) for doc in docs]


@strawberry.type(description="A sales order as the order-to-ship process API sees it.")
class Order:
    id: strawberry.ID
    status: str = strawberry.field(
        description="Lowercase snake case: accepted, released, partially_shipped, shipped, "
        "cancelled, ..."
    )
    customer_id: str
    channel: str
    currency: str | None
    lines: list[OrderLine]
    shipments: list[Shipment]
    created_at: datetime | None
    updated_at: datetime | None

    invoices: list[Invoice] | None = strawberry.field(
        resolver=order_invoices,
        description="The order's invoices from billing; null (with an error) if billing "
        "cannot answer. Batched: one billing request for all orders of a query.",
    )

    @classmethod
    def of(cls, doc: OrderDoc) -> Order:
        return cls(
            id=strawberry.ID(doc.order_id),
            status=doc.status,
            customer_id=doc.customer_id,
            channel=doc.channel,
            currency=doc.currency,
            lines=[OrderLine.of(line) for line in doc.lines],
            shipments=[Shipment.of(shipment) for shipment in doc.shipments],
            created_at=doc.created_at,
            updated_at=doc.updated_at,
        )


@strawberry.type(description="A page of orders; nextCursor is null on the last page.")
class OrderPage:
    items: list[Order]
    next_cursor: str | None

    @classmethod
    def of(cls, doc: OrderPageDoc) -> OrderPage:
        return cls(items=[Order.of(order) for order in doc.items], next_cursor=doc.next_cursor)


@strawberry.type
class LocationAvailability:
    location_id: strawberry.ID
    on_hand: int
    allocated: int
    available_to_promise: int

    @classmethod
    def of(cls, doc: LocationDoc) -> LocationAvailability:
        return cls(
            location_id=strawberry.ID(doc.location_id),
            on_hand=doc.on_hand,
            allocated=doc.allocated,
            available_to_promise=doc.available_to_promise,
        )


@strawberry.type(description="Available-to-promise of one sku, as of a point in time.")
class Availability:
    sku: str
    available_to_promise: int
    as_of: datetime
    locations: list[LocationAvailability]

    @classmethod
    def of(cls, doc: AvailabilityDoc) -> Availability:
        return cls(
            sku=doc.sku,
            available_to_promise=doc.available_to_promise,
            as_of=doc.as_of,
            locations=[LocationAvailability.of(location) for location in doc.locations],
        )
