"""GraphQL object types of an order (camelCase on the wire, as strawberry names them)
and their mapping from the process APIs' documents. No rule lives here: each field is
a process API's field under its portal name; related documents come through the
request's DataLoaders (one batched request for all the orders of a query)."""

from __future__ import annotations

from datetime import date, datetime

import strawberry

from experience_apis.portal.context import PortalContext
from experience_apis.portal.finance import Invoice
from experience_apis.portal.money import Long, Money
from experience_apis.portal.wire import (
    ItemQuantityDoc,
    OrderDoc,
    OrderLineDoc,
    RmaDoc,
    ShipmentDoc,
    StatusChangeDoc,
)

__all__ = ["Long", "Money", "Order", "OrderPage"]
Info = strawberry.Info[PortalContext, None]


@strawberry.type
class ItemQuantity:
    sku: str
    quantity: int

    @classmethod
    def of(cls, doc: ItemQuantityDoc) -> ItemQuantity:
        return cls(sku=doc.sku, quantity=doc.quantity)


@strawberry.type(description="One line of an order with every quantity the order API keeps.")
class OrderLine:
    sku: str
    quantity: int
    allocated: int
    backordered: int
    released: int
    picked: int
    shipped: int
    delivered: int
    cancelled: int
    invoiced: int
    returned: int
    unit_price: Money | None

    @classmethod
    def of(cls, doc: OrderLineDoc) -> OrderLine:
        return cls(
            sku=doc.sku,
            quantity=doc.quantity,
            allocated=doc.allocated,
            backordered=doc.backordered,
            released=doc.released,
            picked=doc.picked,
            shipped=doc.shipped,
            delivered=doc.delivered,
            cancelled=doc.cancelled,
            invoiced=doc.invoiced,
            returned=doc.returned,
            unit_price=Money.of(doc.unit_price),
        )


@strawberry.type(
    description="A shipment of the order. `delayed` is true when the carrier reported a "
    "delay; `promisedDate` is then the new promise."
)
class Shipment:
    shipment_id: strawberry.ID
    carrier: str
    tracking_number: str
    lines: list[ItemQuantity]
    shipped_at: datetime | None
    delivered_at: datetime | None
    delayed: bool
    promised_date: date | None
    delay_reason: str | None

    @classmethod
    def of(cls, doc: ShipmentDoc) -> Shipment:
        promised = None
        if doc.promised_date:
            try:
                promised = date.fromisoformat(doc.promised_date[:10])
            except ValueError:
                promised = None
        return cls(
            shipment_id=strawberry.ID(doc.shipment_id),
            carrier=doc.carrier,
            tracking_number=doc.tracking_number,
            lines=[ItemQuantity.of(line) for line in doc.lines],
            shipped_at=doc.shipped_at,
            delivered_at=doc.delivered_at,
            delayed=doc.delay_reason is not None,
            promised_date=promised,
            delay_reason=doc.delay_reason,
        )


@strawberry.type(description="One change of the order's status.")
class StatusChange:
    from_status: str | None = strawberry.field(name="from")
    to_status: str = strawberry.field(name="to")
    at: datetime
    cause: str

    @classmethod
    def of(cls, doc: StatusChangeDoc) -> StatusChange:
        return cls(from_status=doc.from_status, to_status=doc.to_status, at=doc.at, cause=doc.cause)


@strawberry.type(description="A returned sku: authorised units and what became of them.")
class ReturnLine:
    sku: str
    authorized: int
    received: int
    restocked: int
    damaged: int
    scrapped: int
    returned_to_vendor: int


@strawberry.type(description="A return (RMA) of shipped units of an order.")
class Return:
    id: strawberry.ID
    order_id: strawberry.ID
    status: str = strawberry.field(
        description="authorized, received, inspected, closed, rejected or expired."
    )
    reason: str | None
    lines: list[ReturnLine]
    expires_at: datetime | None
    created_at: datetime | None
    updated_at: datetime | None

    @classmethod
    def of(cls, doc: RmaDoc) -> Return:
        return cls(
            id=strawberry.ID(doc.rma_id),
            order_id=strawberry.ID(doc.order_id),
            status=doc.status,
            reason=doc.reason,
            lines=[
                ReturnLine(
                    sku=line.sku,
                    authorized=line.authorized,
                    received=line.received,
                    restocked=line.restocked,
                    damaged=line.damaged,
                    scrapped=line.scrapped,
                    returned_to_vendor=line.returned_to_vendor,
                )
                for line in doc.lines
            ],
            expires_at=doc.expires_at,
            created_at=doc.created_at,
            updated_at=doc.updated_at,
        )


async def order_invoices(root: Order, info: Info) -> list[Invoice] | None:
    docs = await info.context.caller.loaders.invoices.load(str(root.id))
    return [Invoice.of(doc) for doc in docs]


async def order_history(root: Order, info: Info) -> list[StatusChange]:
    docs = await info.context.caller.loaders.history.load(str(root.id))
    return [StatusChange.of(doc) for doc in docs]


async def order_returns(root: Order, info: Info) -> list[Return]:
    docs = await info.context.caller.loaders.returns.load(str(root.id))
    return [Return.of(doc) for doc in docs]


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
    policy: str | None
    lines: list[OrderLine]
    shipments: list[Shipment]
    created_at: datetime | None
    updated_at: datetime | None

    invoices: list[Invoice] | None = strawberry.field(
        resolver=order_invoices,
        description="The order's invoices from billing; null (with an error) if billing "
        "cannot answer. Batched: one billing request for all orders of a query.",
    )
    status_history: list[StatusChange] = strawberry.field(
        resolver=order_history, description="Oldest first. Batched across the query's orders."
    )
    returns: list[Return] = strawberry.field(
        resolver=order_returns, description="The order's RMAs. Batched across the query's orders."
    )

    @classmethod
    def of(cls, doc: OrderDoc) -> Order:
        return cls(
            id=strawberry.ID(doc.order_id),
            status=doc.status,
            customer_id=doc.customer_id,
            channel=doc.channel,
            currency=doc.currency,
            policy=doc.policy,
            lines=[OrderLine.of(line) for line in doc.lines],
            shipments=[Shipment.of(shipment) for shipment in doc.shipments],
            created_at=doc.created_at,
            updated_at=doc.updated_at,
        )


@strawberry.type(description="A page of orders; nextCursor is null on the last page.")
class OrderPage:
    items: list[Order]
    next_cursor: str | None
