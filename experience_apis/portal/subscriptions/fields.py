"""The Subscription root: the caller's order, shipment and invoice updates."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Annotated, cast

import strawberry

from experience_apis.portal.subscriptions.connection import SubscriptionContext
from experience_apis.portal.subscriptions.updates import (
    InvoiceUpdate,
    OrderUpdate,
    ShipmentUpdate,
    Update,
)
from experience_apis.portal.upstream import PortalError

Info = strawberry.Info[SubscriptionContext, None]

CUSTOMER_ID = (
    "Staff (`portal:staff`, bound to no customer) name the customer to follow; a client "
    "bound to a customer follows its own and may leave this out (another customer's id "
    "is refused)."
)

CustomerId = Annotated[strawberry.ID | None, strawberry.argument(description=CUSTOMER_ID)]


def _customer(info: Info, customer_id: strawberry.ID | None) -> str:
    caller = info.context.caller
    bound = caller.principal.customer_id
    if bound is not None:
        if customer_id is not None and str(customer_id) != bound:
            raise PortalError("A client follows its own customer's updates only.", "FORBIDDEN")
        return bound
    if not caller.is_staff:
        raise PortalError("The token is bound to no customer.", "FORBIDDEN")
    if customer_id is None:
        raise PortalError("Staff name the customer to follow (customerId).", "BAD_USER_INPUT")
    return str(customer_id)


async def _follow(
    info: Info, customer_id: strawberry.ID | None, kind: type[Update]
) -> AsyncGenerator[Update, None]:
    customer = _customer(info, customer_id)
    hub = info.context.hub
    if hub is None:  # executed outside a subscription connection
        raise PortalError("Subscriptions run over the WebSocket at /graphql.", "BAD_REQUEST")
    async for update in hub.updates(customer, kind):
        yield update


async def order_updates(
    info: Info, customer_id: CustomerId = None
) -> AsyncGenerator[OrderUpdate, None]:
    async for update in _follow(info, customer_id, OrderUpdate):
        yield cast("OrderUpdate", update)


async def shipment_updates(
    info: Info, customer_id: CustomerId = None
) -> AsyncGenerator[ShipmentUpdate, None]:
    async for update in _follow(info, customer_id, ShipmentUpdate):
        yield cast("ShipmentUpdate", update)


async def invoice_updates(
    info: Info, customer_id: CustomerId = None
) -> AsyncGenerator[InvoiceUpdate, None]:
    async for update in _follow(info, customer_id, InvoiceUpdate):
        yield cast("InvoiceUpdate", update)


@strawberry.type
class Subscription:
    order_updates: AsyncGenerator[OrderUpdate, None] = strawberry.subscription(
        resolver=order_updates,
        description="The customer's orders as they change status, from now on.",
    )
    shipment_updates: AsyncGenerator[ShipmentUpdate, None] = strawberry.subscription(
        resolver=shipment_updates,
        description="The customer's shipments as they are dispatched, delivered or delayed.",
    )
    invoice_updates: AsyncGenerator[InvoiceUpdate, None] = strawberry.subscription(
        resolver=invoice_updates,
        description="The customer's invoices as they are issued, change status or are paid.",
    )
