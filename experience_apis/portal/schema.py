"""The portal's GraphQL schema. ``sdl()`` is what contracts/graphql/portal.graphql holds."""

from __future__ import annotations

import logging

import strawberry
from graphql import GraphQLError
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from experience_apis.portal.context import PortalContext
from experience_apis.portal.limits import portal_extensions
from experience_apis.portal.objects import Availability, Long, Order, OrderPage

log = logging.getLogger("tally.portal")

MAX_PAGE_SIZE = 100


async def resolve_order(
    info: strawberry.Info[PortalContext, None], id: strawberry.ID
) -> Order | None:
    doc = await info.context.caller.orders.load(str(id))
    return Order.of(doc) if doc else None


async def resolve_orders(
    info: strawberry.Info[PortalContext, None],
    customer_id: str | None = None,
    first: int = 20,
    after: str | None = None,
) -> OrderPage:
    limit = min(max(first, 1), MAX_PAGE_SIZE)
    page = await info.context.caller.apis.order_page(customer_id, limit, after)
    return OrderPage.of(page)


async def resolve_availability(
    info: strawberry.Info[PortalContext, None], sku: strawberry.ID
) -> Availability | None:
    doc = await info.context.caller.apis.item_availability(str(sku))
    return Availability.of(doc) if doc else None


@strawberry.type
class Query:
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
        "customerId or cursor names no orders (an empty page).",
    )
    availability: Availability | None = strawberry.field(
        resolver=resolve_availability, description="Available-to-promise of one sku, by location."
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
    config=StrawberryConfig(scalar_map={Long: LONG}),
    extensions=portal_extensions(),
)


def sdl() -> str:
    return str(schema)
