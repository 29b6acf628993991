"""Stored strategies, locations and region distances, and their planner forms."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from process_apis.availability.allocations.planner import MOST_STOCK, Geography, Strategy
from process_apis.availability.db import channel_strategies, locations, region_distances
from process_apis.availability.strategies.schemas import (
    ChannelStrategy,
    ChannelStrategyIn,
    Location,
    RegionOut,
)


def _out(channel: str, row: Any) -> ChannelStrategy:
    if row is None:
        return ChannelStrategy(
            channel=channel,
            ranking="most_stock",
            split_lines="across_locations",
            priority=[],
            eligible_locations=None,
            configured=False,
            updated_at=None,
        )
    return ChannelStrategy(
        channel=channel,
        ranking=row.ranking,
        split_lines="across_locations" if row.split else "one_location",
        priority=json.loads(row.priority),
        eligible_locations=json.loads(row.eligible) if row.eligible is not None else None,
        configured=True,
        updated_at=row.updated_at,
    )


async def read_strategy(conn: AsyncConnection, channel: str) -> ChannelStrategy:
    row = (
        await conn.execute(
            select(channel_strategies).where(channel_strategies.c.channel == channel)
        )
    ).first()
    return _out(channel, row)


async def write_strategy(
    conn: AsyncConnection, channel: str, data: ChannelStrategyIn, now: datetime
) -> ChannelStrategy:
    await conn.execute(delete(channel_strategies).where(channel_strategies.c.channel == channel))
    await conn.execute(
        insert(channel_strategies).values(
            channel=channel,
            ranking=data.ranking,
            split=int(data.split_lines == "across_locations"),
            priority=json.dumps(list(dict.fromkeys(data.priority))),
            eligible=(
                json.dumps(sorted(set(data.eligible_locations)))
                if data.eligible_locations is not None
                else None
            ),
            updated_at=now,
        )
    )
    return await read_strategy(conn, channel)


async def delete_strategy(conn: AsyncConnection, channel: str) -> bool:
    result = await conn.execute(
        delete(channel_strategies).where(channel_strategies.c.channel == channel)
    )
    return result.rowcount > 0


async def strategy_of(conn: AsyncConnection, channel: str) -> Strategy:
    return _planner_form(await read_strategy(conn, channel))


_STRATEGIES_OF = select(channel_strategies).where(
    channel_strategies.c.channel.in_(bindparam("channels", expanding=True))
)


async def strategies_of(conn: AsyncConnection, channels: list[str]) -> dict[str, Strategy]:
    """The planner strategy of each channel (most stock where none is configured)."""
    rows = await conn.execute(_STRATEGIES_OF, {"channels": channels})
    found = {row.channel: _planner_form(_out(row.channel, row)) for row in rows}
    return {channel: found.get(channel, MOST_STOCK) for channel in channels}


def _planner_form(found: ChannelStrategy) -> Strategy:
    if not found.configured:
        return MOST_STOCK
    return Strategy(
        ranking=found.ranking,
        split=found.split_lines == "across_locations",
        priority=tuple(found.priority),
        eligible=(
            frozenset(found.eligible_locations) if found.eligible_locations is not None else None
        ),
    )


async def geography(conn: AsyncConnection) -> Geography:
    regions = {r.location_id: r.region for r in await conn.execute(select(locations))}
    distances = {
        (r.from_region, r.to_region): int(r.distance)
        for r in await conn.execute(select(region_distances))
    }
    return Geography(region_of=regions, distances=distances)


async def put_location(
    conn: AsyncConnection, location_id: str, region: str, now: datetime
) -> Location:
    await conn.execute(delete(locations).where(locations.c.location_id == location_id))
    await conn.execute(
        insert(locations).values(location_id=location_id, region=region, updated_at=now)
    )
    return Location(location_id, region, now)


async def list_locations(conn: AsyncConnection, after: str, limit: int) -> list[Location]:
    rows = await conn.execute(
        select(locations)
        .where(locations.c.location_id > after)
        .order_by(locations.c.location_id)
        .limit(limit)
    )
    return [Location(r.location_id, r.region, r.updated_at) for r in rows]


async def put_region(conn: AsyncConnection, region: str, distances: dict[str, int]) -> RegionOut:
    await conn.execute(delete(region_distances).where(region_distances.c.from_region == region))
    rows = [
        {"from_region": region, "to_region": other, "distance": d}
        for other, d in sorted(distances.items())
        if other != region
    ]
    if rows:
        await conn.execute(insert(region_distances), rows)
    return await read_region(conn, region)


async def read_region(conn: AsyncConnection, region: str) -> RegionOut:
    rows = await conn.execute(
        select(region_distances).where(
            or_(region_distances.c.from_region == region, region_distances.c.to_region == region)
        )
    )
    mine: dict[str, int] = {}
    theirs: dict[str, int] = {}
    for r in rows:
        if r.from_region == region:
            mine[r.to_region] = int(r.distance)
        else:
            theirs[r.from_region] = int(r.distance)
    return RegionOut(region, dict(sorted((theirs | mine).items())))
