"""Item answers through the cache: hits from memory, misses from the database (one
read transaction), stored for the next read when the cache may keep them."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime

import msgspec
from sqlalchemy import bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from process_apis.availability.db import hold_lines
from process_apis.availability.positions import queries
from process_apis.availability.read_cache.cache import Entry, ItemCache
from process_apis.availability.v2 import shape
from shared.db import Database

_encode = msgspec.json.Encoder().encode

# The earliest expiry of each sku's holds still active at ``now``: its figures change
# then (``reserved`` to ``reserved_lapsed``) with no write to bump its version.
_EXPIRIES = (
    select(hold_lines.c.sku, func.min(hold_lines.c.expires_at).label("until"))
    .where(
        hold_lines.c.sku.in_(bindparam("skus", expanding=True)),
        hold_lines.c.active == 1,
        hold_lines.c.expires_at > bindparam("now", type_=hold_lines.c.expires_at.type),
    )
    .group_by(hold_lines.c.sku)
)


async def _expiries(conn: AsyncConnection, skus: list[str], now: datetime) -> dict[str, datetime]:
    rows = await conn.execute(_EXPIRIES, {"skus": sorted(set(skus)), "now": now})
    return {r.sku: r.until for r in rows}


class ItemReader:
    """``cache`` None: every read goes to the database (the cache is off)."""

    def __init__(self, db: Database, cache: ItemCache | None) -> None:
        self.db = db
        self.cache = cache

    def cached(self, skus: Sequence[str], now: datetime) -> list[Entry] | None:
        """Every sku's entry from memory, or None if one is missing (no await)."""
        cache = self.cache
        if cache is None:
            return None
        found = []
        for sku in skus:
            entry = cache.get(sku, now)
            if entry is None:
                return None
            found.append(entry)
        return found

    async def items(self, skus: Sequence[str], now: datetime) -> list[Entry]:
        """Each sku's entry, in the order asked (each sku once)."""
        asked = list(dict.fromkeys(skus))
        cache = self.cache
        found: dict[str, Entry] = {}
        if cache is not None:
            for sku in asked:
                if (entry := cache.get(sku, now)) is not None:
                    found[sku] = entry
        missing = [sku for sku in asked if sku not in found]
        if missing:
            # The versions first, the database after: a write committed after this read
            # began has bumped them by the time it answers, so this entry is dropped.
            stamps = {sku: cache.stamp(sku) for sku in missing} if cache else {}
            async with self.db.read() as conn:
                fresh = await queries.items(conn, missing, now)
                until = await _expiries(conn, missing, now) if cache else {}
            stored = time.monotonic()
            for item in fresh:
                v2 = shape.item(item)
                slot, version = stamps.get(item.sku, (0, 0))
                entry = Entry(
                    item, v2, _encode(v2), slot, version, now, until.get(item.sku), stored
                )
                # A sku with no position answers ``as_of`` = the time of the read: not kept.
                if cache is not None and item.locations:
                    cache.put(item.sku, entry)
                found[item.sku] = entry
        return [found[sku] for sku in asked]
