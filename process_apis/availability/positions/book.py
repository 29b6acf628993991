"""A set of positions locked for one transaction, with their values kept current as
changes are applied, so a multi-line operation decides on what it has already done.

``values`` are the stored buckets; ``lapsed`` the reserved units of holds whose time
ran out (read under the same locks), which ``atp`` no longer deducts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from process_apis.availability.positions.ledger import (
    Cause,
    PositionKey,
    atp_of,
    buckets_of,
    change,
    lapsed_by_position,
    locked_rows,
    rows_of,
)


class PositionBook:
    def __init__(
        self,
        values: dict[PositionKey, dict[str, int]],
        lapsed: dict[PositionKey, int] | None = None,
    ) -> None:
        self.values = values
        self.lapsed = lapsed or {}

    @classmethod
    async def lock(
        cls,
        conn: AsyncConnection,
        skus: list[str],
        location_id: str | None = None,
        *,
        now: datetime | None = None,
    ) -> PositionBook:
        """Locks the positions; with ``now``, also reads the holds lapsed by then."""
        rows = await locked_rows(conn, skus, location_id)
        values = {PositionKey(r.sku, r.location_id, r.lot): buckets_of(r) for r in rows}
        lapsed = await lapsed_by_position(conn, skus, now, location_id) if now is not None else {}
        return cls(values, lapsed)

    @classmethod
    async def read(cls, conn: AsyncConnection, skus: list[str], now: datetime) -> PositionBook:
        """The same view without locks, for answers that guard no write."""
        rows = await rows_of(conn, skus)
        values = {PositionKey(r.sku, r.location_id, r.lot): buckets_of(r) for r in rows}
        return cls(values, await lapsed_by_position(conn, skus, now))

    def get(self, key: PositionKey, bucket: str) -> int:
        found = self.values.get(key)
        return found[bucket] if found else 0

    def atp(self, key: PositionKey) -> int:
        found = self.values.get(key)
        return atp_of(found) + self.lapsed.get(key, 0) if found else 0

    def keys_at(self, sku: str, location_id: str) -> list[PositionKey]:
        return sorted(k for k in self.values if k.sku == sku and k.location_id == location_id)

    def locations_of(self, sku: str) -> list[str]:
        return sorted({k.location_id for k in self.values if k.sku == sku})

    async def apply(
        self,
        conn: AsyncConnection,
        key: PositionKey,
        deltas: dict[str, int],
        cause: Cause,
        *,
        now: datetime,
        require_atp: int | None = None,
    ) -> bool:
        ok = await change(conn, key, deltas, cause, now=now, require_atp=require_atp)
        if ok and key in self.values:
            for bucket, d in deltas.items():
                self.values[key][bucket] += d
        return ok

    def allocated_draws(
        self, sku: str, location_id: str, quantity: int, prefer: PositionKey | None = None
    ) -> tuple[list[tuple[PositionKey, int]], int]:
        """Where to take ``quantity`` of allocated stock from at one location: the
        preferred position first (the lot that physically shipped), then the positions
        holding the most. Returns the draws and what could not be found."""
        keys = sorted(
            self.keys_at(sku, location_id),
            key=lambda k: (k != prefer, -self.get(k, "allocated"), k.lot),
        )
        draws: list[tuple[PositionKey, int]] = []
        left = quantity
        for key in keys:
            take = min(self.get(key, "allocated"), left)
            if take > 0:
                draws.append((key, take))
                left -= take
        return draws, left
