"""Reading positions: ATP per item and location, with freshness, and the ledger."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from process_apis.availability.db import BUCKETS, delta_column, movements, positions
from process_apis.availability.positions.ledger import (
    PositionKey,
    atp_of,
    buckets_of,
    lapsed_by_position,
)
from process_apis.availability.schemas import (
    ItemAvailability,
    LocationAvailability,
    LotPosition,
    Movement,
)


def active_buckets(row: Any, lapsed: dict[PositionKey, int]) -> tuple[dict[str, int], int]:
    """The row's buckets with ``reserved`` counting only active holds, and the lapsed."""
    values = buckets_of(row)
    gone = lapsed.get(PositionKey(row.sku, row.location_id, row.lot), 0)
    values["reserved"] -= gone
    return values, gone


def _item(sku: str, rows: Sequence[Any], lapsed: dict[PositionKey, int]) -> ItemAvailability:
    by_location: dict[str, list[Any]] = {}
    for row in rows:
        by_location.setdefault(row.location_id, []).append(row)
    locations = []
    for location_id, lot_rows in sorted(by_location.items()):
        lots = []
        for r in lot_rows:
            values, gone = active_buckets(r, lapsed)
            lots.append(
                LotPosition(
                    lot=r.lot or None,
                    available_to_promise=atp_of(values),
                    updated_at=r.updated_at,
                    reserved_lapsed=gone,
                    **values,
                )
            )
        sums = {b: sum(getattr(lot, b) for lot in lots) for b in BUCKETS}
        locations.append(
            LocationAvailability(
                location_id=location_id, available_to_promise=atp_of(sums), lots=lots, **sums
            )
        )
    as_of = max((r.updated_at for r in rows), default=datetime.now(UTC))
    return ItemAvailability(
        sku=sku,
        # A location short of stock (negative ATP) cannot lend to another one.
        available_to_promise=sum(max(0, loc.available_to_promise) for loc in locations),
        as_of=as_of,
        locations=locations,
    )


async def items(
    conn: AsyncConnection, skus: Sequence[str], now: datetime | None = None
) -> list[ItemAvailability]:
    """Availability of each sku at ``now`` (holds lapsed by then do not count), in the
    order asked; a sku never seen answers zeros."""
    now = now or datetime.now(UTC)
    rows = (
        await conn.execute(
            select(positions)
            .where(positions.c.sku.in_(sorted(set(skus))))
            .order_by(positions.c.sku, positions.c.location_id, positions.c.lot)
        )
    ).all()
    lapsed = await lapsed_by_position(conn, list(skus), now)
    by_sku: dict[str, list[Any]] = {}
    for row in rows:
        by_sku.setdefault(row.sku, []).append(row)
    return [_item(sku, by_sku.get(sku, []), lapsed) for sku in dict.fromkeys(skus)]


async def item_movements(conn: AsyncConnection, sku: str, after: int, limit: int) -> list[Movement]:
    rows = await conn.execute(
        select(movements)
        .where(movements.c.sku == sku, movements.c.movement_id > after)
        .order_by(movements.c.movement_id)
        .limit(limit)
    )
    return [
        Movement(
            movement_id=r.movement_id,
            sku=r.sku,
            location_id=r.location_id,
            lot=r.lot or None,
            deltas={b: d for b in BUCKETS if (d := int(getattr(r, delta_column(b))))},
            reason=r.reason,
            source=r.source,
            reference=r.reference,
            created_at=r.created_at,
        )
        for r in rows
    ]
