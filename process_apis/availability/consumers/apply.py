"""Applying a fact's bucket deltas to positions through the ledger. A fact from a
system of record is applied even when the projection has drifted: a decrease larger
than the bucket holds stops at zero (logged; reconciliation reports the drift)
rather than failing the event forever."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from process_apis.availability.positions.ledger import (
    Cause,
    PositionKey,
    buckets_of,
    change,
    ensure,
    locked_rows,
)

log = logging.getLogger("tally.availability")

Changes = dict[PositionKey, dict[str, int]]


def add(changes: Changes, key: PositionKey, **deltas: int) -> None:
    into = changes.setdefault(key, {})
    for bucket, delta in deltas.items():
        into[bucket] = into.get(bucket, 0) + delta


async def apply_changes(
    conn: AsyncConnection, changes: Changes, cause: Cause, now: datetime
) -> list[tuple[PositionKey, dict[str, int]]]:
    """Every position's deltas in (sku, location, lot) order, each one ledger row;
    returns the deltas as applied (``emit_replenished`` takes them)."""
    applied: list[tuple[PositionKey, dict[str, int]]] = []
    for key, deltas in sorted(changes.items()):
        deltas = {bucket: d for bucket, d in deltas.items() if d}
        if not deltas:
            continue
        await ensure(conn, key, now)
        rows = await locked_rows(conn, [key.sku], key.location_id)
        current = next(
            (buckets_of(r) for r in rows if PositionKey(r.sku, r.location_id, r.lot) == key), None
        )
        if current is None:
            raise RuntimeError(f"position {key} vanished while applying {cause.reason}")
        clamped = {b: max(d, -current[b]) for b, d in deltas.items()}
        if clamped != deltas:
            log.warning(
                "%s %s: %s asks %s but the position holds %s; stopping at zero",
                cause.reason,
                cause.reference,
                key,
                deltas,
                {b: current[b] for b in deltas},
            )
        if not await change(conn, key, clamped, cause, now=now):
            raise RuntimeError(f"position {key} changed under its lock")
        applied.append((key, clamped))
    return applied
