"""Availability v2 routes: the same positions as v1 (``positions.queries``), shown
with every bucket at every level, and the per-lot positions as a paged list."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency
from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from process_apis.availability import clock
from process_apis.availability import schemas as v1
from process_apis.availability.db import positions
from process_apis.availability.positions import queries
from process_apis.availability.positions.ledger import atp_of, lapsed_by_position
from process_apis.availability.positions.routes import ChannelQuery, GroupQuery, SkusQuery
from process_apis.availability.read_cache.reader import ItemReader
from process_apis.availability.rules.allowance import Buyer
from process_apis.availability.rules.view import channel_figures
from process_apis.availability.schemas import ChannelView
from process_apis.availability.v2 import shape
from process_apis.availability.v2.schemas import (
    BucketsV2,
    ChannelFigures,
    ItemAvailabilityV2,
    ItemBatch,
    Position,
)
from shared.auth.litestar_auth import requires
from shared.db import Database
from shared.models import (
    ID_PATTERN,
    SKU_PATTERN,
    CursorParam,
    LimitParam,
    Page,
    SkuParam,
    query_filter,
)
from shared.paging import decode_key, keyset_page
from shared.problems import problem_responses

SkuFilter = Annotated[str | None, query_filter(SKU_PATTERN, description="Only this sku.")]
LocationFilter = Annotated[str | None, query_filter(ID_PATTERN, description="Only this location.")]
Key = tuple[str, str, str]  # (sku, location_id, lot), lot '' for none


def _item(found: v1.ItemAvailability) -> ItemAvailabilityV2:
    return shape.item(found)


def _with_channel(
    item: ItemAvailabilityV2, buyer: Buyer, figures: tuple[int, ChannelView]
) -> ItemAvailabilityV2:
    available, view = figures
    return msgspec.structs.replace(
        item,
        for_channel=ChannelFigures(
            channel=buyer.channel,
            customer_group=buyer.customer_group,
            channel_available=available,
            eligible_available=view.eligible_available,
            fenced_for_others=view.fenced_for_others,
            cap_remaining=view.cap_remaining,
        ),
    )


async def _positions(
    conn: AsyncConnection, sku: str | None, location_id: str | None, after: Key | None, limit: int
) -> list[Position]:
    c = positions.c
    query = select(positions).order_by(c.sku, c.location_id, c.lot).limit(limit)
    if sku is not None:
        query = query.where(c.sku == sku)
    if location_id is not None:
        query = query.where(c.location_id == location_id)
    if after is not None:
        s, loc, lot = after
        query = query.where(
            or_(
                c.sku > s,
                and_(c.sku == s, c.location_id > loc),
                and_(c.sku == s, c.location_id == loc, c.lot > lot),
            )
        )
    rows = (await conn.execute(query)).all()
    lapsed = await lapsed_by_position(conn, sorted({r.sku for r in rows}), clock.now())
    found = []
    for row in rows:
        values, gone = queries.active_buckets(row, lapsed)
        found.append(
            Position(
                sku=row.sku,
                location_id=row.location_id,
                lot=row.lot or None,
                available_to_promise=atp_of(values),
                buckets=BucketsV2(reserved_lapsed=gone, **values),
                updated_at=row.updated_at,
            )
        )
    return found


class ItemControllerV2(Controller):
    path = "/availability/v2"
    tags = ["availability"]

    @get(
        "/items",
        operation_id="listItemAvailabilityV2",
        summary="Every bucket of several items at once",
        description=(
            "Each sku asked, in the order asked; a sku never seen answers zeros. With "
            "`channel` (and `customer_group`), each item also has `for_channel`: what "
            "that channel may promise (decision 0007)."
        ),
        responses=problem_responses(),
        **requires("inventory:read"),
    )
    async def list_items(
        self,
        db: NamedDependency[Database],
        item_reader: NamedDependency[ItemReader],
        sku: SkusQuery,
        channel: ChannelQuery = None,
        customer_group: GroupQuery = None,
    ) -> ItemBatch:
        now = clock.now()
        if channel is None:  # the hot read: through the cache (decision 0039)
            return ItemBatch([e.v2 for e in await item_reader.items(sku, now)])
        async with db.read() as conn:
            found = [_item(i) for i in await queries.items(conn, sku, now)]
            buyer = Buyer(channel, customer_group)
            figures = await channel_figures(conn, [i.sku for i in found], buyer, now)
        return ItemBatch([_with_channel(i, buyer, figures[i.sku]) for i in found])

    @get(
        "/items/{sku:str}",
        operation_id="getItemAvailabilityV2",
        summary="Every bucket of one item, per location and per lot",
        description=(
            "BucketsV2 are summed per location and for the item; `reserved` counts active "
            "holds only, `reserved_lapsed` the holds whose time ran out."
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
    ) -> ItemAvailabilityV2:
        now = clock.now()
        if channel is None:  # the hot read: through the cache (decision 0039)
            return (await item_reader.items([sku], now))[0].v2
        async with db.read() as conn:
            found = _item((await queries.items(conn, [sku], now))[0])
            buyer = Buyer(channel, customer_group)
            figures = await channel_figures(conn, [sku], buyer, now)
        return _with_channel(found, buyer, figures[sku])

    @get(
        "/positions",
        operation_id="listPositions",
        summary="The per-lot positions, by sku, location and lot",
        responses=problem_responses(),
        **requires("inventory:read"),
    )
    async def list_positions(
        self,
        db: NamedDependency[Database],
        sku: SkuFilter = None,
        location_id: LocationFilter = None,
        cursor: CursorParam = None,
        limit: LimitParam = 50,
    ) -> Page[Position]:
        async with db.read() as conn:
            # A cursor we did not issue starts at the top.
            after = decode_key(cursor, 3, foreign="top")
            found = await _positions(conn, sku, location_id, after, limit + 1)
        return keyset_page(found, limit, key=lambda p: (p.sku, p.location_id, p.lot or ""))
