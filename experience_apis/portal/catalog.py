"""What a customer can buy: availability (availability v2's batch read, one call for
all the skus asked) and the catalog with the customer's own price."""

from __future__ import annotations

from datetime import datetime

import strawberry

from experience_apis.portal.connections import Connection, Start, window
from experience_apis.portal.context import PortalContext
from experience_apis.portal.money import Money
from experience_apis.portal.upstream import bad_input, well_formed
from experience_apis.portal.wire import AvailabilityDoc, CatalogItemDoc, LocationDoc
from shared.models import Identifier

Info = strawberry.Info[PortalContext, None]

MAX_SKUS = 100  # one batch read of availability v2


@strawberry.type
class LocationAvailability:
    location_id: strawberry.ID
    available_to_promise: int
    on_hand: int
    allocated: int

    @classmethod
    def of(cls, doc: LocationDoc) -> LocationAvailability:
        buckets = doc.buckets or {}
        return cls(
            location_id=strawberry.ID(doc.location_id),
            available_to_promise=doc.available_to_promise,
            on_hand=buckets.get("on_hand", doc.on_hand),
            allocated=buckets.get("allocated", doc.allocated),
        )


@strawberry.type(description="Available-to-promise of one sku, as of a point in time.")
class ItemAvailability:
    sku: str
    available_to_promise: int
    channel_available: int | None = strawberry.field(
        description="With `channel`: what that channel may promise to the caller's "
        "customer (its eligible locations, less ring-fences kept for other customer "
        "groups, within the channel's cap). Null without `channel`."
    )
    as_of: datetime
    locations: list[LocationAvailability] | None = strawberry.field(
        description="Per location; null unless perLocation is true."
    )

    @classmethod
    def of(cls, doc: AvailabilityDoc, per_location: bool) -> ItemAvailability:
        return cls(
            sku=doc.sku,
            available_to_promise=doc.available_to_promise,
            channel_available=doc.for_channel.channel_available if doc.for_channel else None,
            as_of=doc.as_of,
            locations=[LocationAvailability.of(loc) for loc in doc.locations]
            if per_location
            else None,
        )


async def resolve_availability(
    info: Info,
    skus: list[strawberry.ID],
    channel: str | None = None,
    per_location: bool = False,
) -> list[ItemAvailability]:
    """Each sku asked, in the order asked (repeats once); a malformed sku names nothing."""
    if len(skus) > MAX_SKUS:
        raise bad_input(f"At most {MAX_SKUS} skus per query.")
    if channel is not None and not well_formed(channel, Identifier):
        raise bad_input("channel is not a well-formed channel id.")
    caller = info.context.caller
    group = None
    bound = caller.principal.customer_id
    if channel is not None and bound is not None:  # its group's ring-fences are its own
        account = await caller.loaders.accounts.load(bound)
        group = account.customer_group if account else None
    found = await caller.apis.availability_of([str(s) for s in skus], channel, group)
    asked = dict.fromkeys(str(s) for s in skus)
    return [ItemAvailability.of(found[s], per_location) for s in asked if s in found]


@strawberry.type(description="A catalog item with the price the caller's customer pays.")
class CatalogItem:
    sku: str
    name: str
    base_uom: str | None
    tax_class: str | None
    list_price: Money
    price: Money = strawberry.field(description="The customer's price, else the list price.")

    @classmethod
    def of(cls, doc: CatalogItemDoc) -> CatalogItem:
        return cls(
            sku=doc.sku,
            name=doc.name,
            base_uom=doc.base_uom,
            tax_class=doc.tax_class,
            list_price=Money.exactly(doc.list_price),
            price=Money.exactly(doc.price),
        )


async def resolve_item(info: Info, sku: strawberry.ID) -> CatalogItem | None:
    caller = info.context.caller
    doc = await caller.apis.catalog_item(str(sku), caller.principal.customer_id)
    return CatalogItem.of(doc) if doc else None


async def resolve_items(
    info: Info, search: str | None = None, first: int = 20, after: str | None = None
) -> Connection[CatalogItem]:
    caller = info.context.caller
    if search is not None and (len(search) > 100 or not search.isprintable()):
        raise bad_input("search: up to 100 printable characters.")
    start = Start.after(after)
    page = await caller.apis.catalog_page(
        search, caller.principal.customer_id, start.limit(first), start.cursor
    )
    found = window(page, start, first, CatalogItemDoc, "order_to_ship")
    return Connection.of(found, CatalogItem.of)
