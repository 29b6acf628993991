from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency

from process_apis.availability import clock
from process_apis.availability.positions import queries
from process_apis.availability.read_cache.reader import ItemReader
from process_apis.availability.rules.allowance import Buyer
from process_apis.availability.rules.view import for_channel
from process_apis.availability.schemas import ItemAvailability, Movement
from shared.auth.litestar_auth import requires
from shared.db import Database
from shared.models import (
    ID_PATTERN,
    SKU_PATTERN,
    CursorParam,
    LimitParam,
    Page,
    Sku,
    SkuParam,
    query_filter,
)
from shared.paging import decode_cursor, encode_cursor, keyset_page
from shared.problems import problem_responses

SkusQuery = Annotated[
    list[Sku], query_filter(SKU_PATTERN, name="sku", many=True, required=True, min_items=1)
]


ChannelQuery = Annotated[
    str | None,
    query_filter(
        ID_PATTERN,
        description="Answer channel_available for this channel (its rules and locations).",
    ),
]
GroupQuery = Annotated[
    str | None,
    query_filter(
        ID_PATTERN,
        description="The customer group the channel sells to (its ring-fences count as its own).",
    ),
]


def _after(cursor: str | None) -> int:
    """The movement id to continue after; a cursor we did not issue starts at the top
    (house rule: paging never fails on a cursor)."""
    raw = decode_cursor(cursor)
    return int(raw) if raw and raw.isdigit() and len(raw) <= 18 else 0


class ItemController(Controller):
    path = "/availability/v1/items"
    tags = ["availability"]

    @get(
        "/",
        operation_id="listItemAvailability",
        summary="Available-to-promise of several items at once",
        responses=problem_responses(),
        **requires("inventory:read"),
    )
    async def list_items(
        self,
        item_reader: NamedDependency[ItemReader],
        sku: SkusQuery,
        cursor: CursorParam = None,
        limit: LimitParam = 100,
    ) -> Page[ItemAvailability]:
        # Pages over the skus asked, in the order asked (the cursor is the index to go
        # on from); the default limit answers every sku (at most 100) in one page.
        asked = list(dict.fromkeys(sku))
        start = _after(cursor)
        chosen = asked[start : start + limit]
        found = [e.v1 for e in await item_reader.items(chosen, clock.now())] if chosen else []
        more = start + limit < len(asked)
        return Page(found, encode_cursor(str(start + limit)) if more else None)

    @get(
        "/{sku:str}",
        operation_id="getItemAvailability",
        summary="Available-to-promise of one item, per location, with its source positions",
        description=(
            "With `channel` (and `customer_group`), also `channel_available`: the ATP "
            "of the channel's eligible locations minus what ring-fences keep for "
            "others, within the channel's cap (decision 0007)."
        ),
        responses=problem_responses(),
        **requires("inventory:read"),
    )
    async def get_item(
        self,
        sku: SkuParam,
        db: NamedDependency[Database],
        item_reader: NamedDependency[ItemReader],
        channel: ChannelQuery = None,
        customer_group: GroupQuery = None,
    ) -> ItemAvailability:
        now = clock.now()
        if channel is None:  # through the cache (decision 0039)
            return (await item_reader.items([sku], now))[0].v1
        async with db.read() as conn:
            found = (await queries.items(conn, [sku], now))[0]
            return await for_channel(conn, found, Buyer(channel, customer_group), now)

    @get(
        "/{sku:str}/movements",
        operation_id="listItemMovements",
        summary="The movement ledger of one item, oldest first",
        description=(
            "Administration only (`inventory:admin`): the ledger names every "
            "customer's documents. A partner reads its own allocations and holds by id."
        ),
        responses=problem_responses(),
        **requires("inventory:admin"),
    )
    async def list_movements(
        self,
        sku: SkuParam,
        db: NamedDependency[Database],
        cursor: CursorParam = None,
        limit: LimitParam = 50,
    ) -> Page[Movement]:
        async with db.read() as conn:
            found = await queries.item_movements(conn, sku, _after(cursor), limit + 1)
        return keyset_page(found, limit, key=lambda m: str(m.movement_id))
