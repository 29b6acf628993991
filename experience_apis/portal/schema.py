"""The portal's GraphQL schema. ``sdl()`` is what contracts/graphql/portal.graphql holds."""

from __future__ import annotations

import logging

import strawberry
from graphql import GraphQLError
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from experience_apis.portal.catalog import (
    CatalogItem,
    ItemAvailability,
    resolve_availability,
    resolve_item,
    resolve_items,
)
from experience_apis.portal.connections import Connection, page_size
from experience_apis.portal.context import PortalContext
from experience_apis.portal.limits import portal_extensions
from experience_apis.portal.money import Long
from experience_apis.portal.mutations import Mutation
from experience_apis.portal.objects import Order, OrderPage
from experience_apis.portal.staff import resolve_customer
from experience_apis.portal.subscriptions.fields import Subscription
from experience_apis.portal.upstream import decode_items
from experience_apis.portal.viewer import Customer, resolve_viewer
from experience_apis.portal.wire import OrderDoc

log = logging.getLogger("tally.portal")

Info = strawberry.Info[PortalContext, None]


async def resolve_order(info: Info, id: strawberry.ID) -> Order | None:
    caller = info.context.caller
    if caller.principal.customer_id is None and not caller.is_staff:
        return None  # no customer of its own: nothing to read
    doc = await caller.loaders.orders.load(str(id))
    if doc is None or not caller.may_read_customer(doc.customer_id):
        return None
    return Order.of(doc)


async def resolve_orders(
    info: Info, customer_id: str | None = None, first: int = 20, after: str | None = None
) -> OrderPage:
    caller = info.context.caller
    if caller.principal.customer_id is None and not caller.is_staff:
        return OrderPage(items=[], next_cursor=None)  # no customer of its own to list
    page = await caller.apis.order_page(customer_id, page_size(first), after)
    docs = decode_items(page, OrderDoc, "order_to_ship")
    caller.loaders.prime_orders(docs)
    return OrderPage(items=[Order.of(doc) for doc in docs], next_cursor=page.next_cursor)


@strawberry.type
class Query:
    viewer: Customer | None = strawberry.field(
        resolver=resolve_viewer,
        description="The customer the token is bound to (null for a token bound to none).",
    )
    customer: Customer | None = strawberry.field(
        resolver=resolve_customer,
        description="Staff (`portal:staff`, bound to no customer): any customer. Anyone "
        "else: its own customer, or null as for an unknown id.",
    )
    order: Order | None = strawberry.field(
        resolver=resolve_order,
        description="One order of the caller. Null when it is unknown or not visible to "
        "the caller (another customer's order).",
    )
    orders: OrderPage = strawberry.field(
        resolver=resolve_orders,
        description="The caller's orders, oldest first, a page of `first` (1 to 100, "
        "clamped) at a time; pass nextCursor as `after`. A client bound to a customer gets "
        "that customer's orders only, whatever customerId it names; a malformed "
        "customerId or cursor names no orders (an empty page). Prefer viewer.orders.",
    )
    availability: list[ItemAvailability] = strawberry.field(
        resolver=resolve_availability,
        description="Available-to-promise of each sku asked (at most 100), in the order "
        "asked, read in one call; per location when perLocation is true.",
    )
    item: CatalogItem | None = strawberry.field(
        resolver=resolve_item, description="A catalog item with the customer's price."
    )
    items: Connection[CatalogItem] = strawberry.field(
        resolver=resolve_items,
        description="The catalog, searched by name or sku (case-insensitive).",
    )


MAX_SAFE_INTEGER = 2**53 - 1  # exact in JSON numbers as JavaScript reads them


def _long(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or abs(value) > MAX_SAFE_INTEGER:
        raise GraphQLError(f"Long cannot represent {value!r}.")
    return value


LONG = strawberry.scalar(
    name="Long",
    description="A whole number up to 2^53 - 1 in magnitude, as a JSON number.",
    serialize=_long,
    parse_value=_long,
)


class PortalSchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Expected outcomes (a refused or unreachable process API, a malformed query)
        are one log line; only unexpected exceptions get strawberry's traceback."""
        unexpected = []
        for error in errors:
            original = error.original_error
            if original is None or isinstance(original, GraphQLError):
                code = str((error.extensions or {}).get("code", "GRAPHQL_VALIDATION"))
                level = logging.WARNING if code.startswith("DOWNSTREAM") else logging.INFO
                log.log(level, "graphql error %s at %s: %s", code, error.path, error.message)
            else:
                unexpected.append(error)
        super().process_errors(unexpected, execution_context)


schema = PortalSchema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    config=StrawberryConfig(scalar_map={Long: LONG}),
    extensions=portal_extensions(),
)


def sdl() -> str:
    return str(schema)
