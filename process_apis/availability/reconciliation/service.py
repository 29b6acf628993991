"""One reconciliation run: per (sku, location), the ERP's financial on-hand, the WMS's
physical on-hand and the projection's on-hand (summed over lots).

A position whose largest difference is above the threshold is either *settling* (one
of the systems changed it within the settlement window, so a fact may still be on its
way: reported, not stored) or *drift*: stored as an open exception with its evidence.
One open exception per position: a later run refreshes its figures. The database holds
to it (a unique index on the open ones) and a run records an exception with one upsert
on that index, so runs at the same time (two replicas, the scheduled run and one asked
for) refresh one exception rather than each opening its own."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import uuid_utils
from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from process_apis.availability.db import (
    OPEN_EXCEPTION,
    movements,
    positions,
    reconciliation_exceptions,
    reconciliation_runs,
)
from process_apis.availability.reconciliation.schemas import (
    Evidence,
    InFlight,
    ReconciliationException,
    RunReport,
    Settling,
)
from process_apis.availability.reconciliation.sources import Figures, StockSources
from shared.db import Database

EXC = reconciliation_exceptions
RECENT_MOVEMENTS = 10


def exception_of(row: Any) -> ReconciliationException:
    return ReconciliationException(
        exception_id=row.exception_id,
        sku=row.sku,
        location_id=row.location_id,
        status=row.status,
        erp_on_hand=int(row.erp_on_hand or 0),
        wms_on_hand=int(row.wms_on_hand or 0),
        projection_on_hand=int(row.projection_on_hand),
        largest_difference=int(row.largest_difference),
        evidence=msgspec.json.decode(row.evidence, type=Evidence),
        run_id=row.run_id,
        detected_at=row.detected_at,
        last_seen_at=row.last_seen_at,
        resolved_at=row.resolved_at,
        resolution=row.resolution,
        resolved_by=row.resolved_by,
    )


async def _projection(conn: AsyncConnection) -> dict[tuple[str, str], int]:
    rows = await conn.execute(
        select(positions.c.sku, positions.c.location_id, func.sum(positions.c.on_hand)).group_by(
            positions.c.sku, positions.c.location_id
        )
    )
    return {(r[0], r[1]): int(r[2] or 0) for r in rows}


async def _movements(
    conn: AsyncConnection, sku: str, location_id: str, since: datetime | None, limit: int
) -> list[InFlight]:
    query = (
        select(movements)
        .where(movements.c.sku == sku, movements.c.location_id == location_id)
        .order_by(movements.c.movement_id.desc())
        .limit(limit)
    )
    if since is not None:
        query = query.where(movements.c.created_at > since)
    return [
        InFlight(
            system="projection",
            at=r.created_at,
            reason=r.reason,
            reference=r.reference,
            on_hand_delta=int(r.delta_on_hand),
        )
        for r in await conn.execute(query)
    ]


def _recent(figures: Figures, key: tuple[str, str], system: Any, since: datetime) -> list[InFlight]:
    found = figures.get(key)
    if found is None or found[1] <= since:
        return []
    return [InFlight(system=system, at=found[1])]


async def reconcile(
    db: Database,
    sources: StockSources,
    *,
    window_seconds: int,
    threshold: int,
    now: datetime | None = None,
) -> RunReport:
    started = datetime.now(UTC)
    erp, wms = await sources.erp_on_hand(), await sources.wms_on_hand()
    now = now or datetime.now(UTC)
    since = now - timedelta(seconds=window_seconds)
    run_id = f"REC-{uuid_utils.uuid7()}"
    settling: list[Settling] = []
    raised: list[ReconciliationException] = []
    async with db.transaction() as tx:
        conn = tx.conn
        projected = await _projection(conn)
        keys = sorted(erp.keys() | wms.keys() | projected.keys())
        for key in keys:
            figures = (erp.get(key, (0, now))[0], wms.get(key, (0, now))[0], projected.get(key, 0))
            largest = max(figures) - min(figures)
            if largest <= threshold:
                continue
            in_flight = [
                *_recent(erp, key, "erp", since),
                *_recent(wms, key, "wms", since),
                *await _movements(conn, *key, since, RECENT_MOVEMENTS),
            ]
            if in_flight:
                settling.append(Settling(key[0], key[1], *figures, in_flight))
                continue
            evidence = Evidence(
                erp_on_hand=figures[0],
                wms_on_hand=figures[1],
                projection_on_hand=figures[2],
                in_flight=in_flight,
                recent_movements=await _movements(conn, *key, None, RECENT_MOVEMENTS),
                detected_at=now,
            )
            raised.append(await _record(conn, key, figures, largest, evidence, run_id, now))
        await conn.execute(
            insert(reconciliation_runs).values(
                run_id=run_id,
                started_at=started,
                finished_at=datetime.now(UTC),
                settlement_window_seconds=window_seconds,
                threshold=threshold,
                checked=len(keys),
                settling=len(settling),
                raised=len(raised),
            )
        )
    return RunReport(
        run_id=run_id,
        started_at=started,
        finished_at=datetime.now(UTC),
        settlement_window_seconds=window_seconds,
        threshold=threshold,
        checked=len(keys),
        settling=settling,
        exceptions=raised,
    )


async def _record(
    conn: AsyncConnection,
    key: tuple[str, str],
    figures: Sequence[int],
    largest: int,
    evidence: Evidence,
    run_id: str,
    now: datetime,
) -> ReconciliationException:
    values = {
        "erp_on_hand": figures[0],
        "wms_on_hand": figures[1],
        "projection_on_hand": figures[2],
        "largest_difference": largest,
        "evidence": msgspec.json.encode(evidence).decode(),
        "run_id": run_id,
        "last_seen_at": now,
    }
    new = {
        "exception_id": f"RX-{uuid_utils.uuid7()}",
        "sku": key[0],
        "location_id": key[1],
        "status": "open",
        "detected_at": now,
        **values,
    }
    # Opens the exception, or refreshes the open one (its id and detected_at stay).
    # On PostgreSQL a run that meets another's uncommitted insert waits for it, then
    # updates the row that committed (or inserts, if that run rolled back).
    if conn.dialect.name == "postgresql":
        pg = postgresql.insert(EXC).values(**new)
        upsert = pg.on_conflict_do_update(
            index_elements=[EXC.c.sku, EXC.c.location_id], index_where=OPEN_EXCEPTION, set_=values
        ).returning(*EXC.c)
    else:
        lite = sqlite.insert(EXC).values(**new)
        upsert = lite.on_conflict_do_update(
            index_elements=[EXC.c.sku, EXC.c.location_id], index_where=OPEN_EXCEPTION, set_=values
        ).returning(*EXC.c)
    return exception_of((await conn.execute(upsert)).one())


async def list_exceptions(
    db: Database, status: str | None, skus: list[str], after: str | None, limit: int
) -> list[ReconciliationException]:
    query = select(EXC).order_by(EXC.c.exception_id).limit(limit)
    if status:
        query = query.where(EXC.c.status == status)
    if skus:
        query = query.where(EXC.c.sku.in_(skus))
    if after:
        query = query.where(EXC.c.exception_id > after)
    async with db.read() as conn:
        return [exception_of(r) for r in await conn.execute(query)]


async def get_exception(db: Database, exception_id: str) -> ReconciliationException | None:
    async with db.read() as conn:
        row = (await conn.execute(select(EXC).where(EXC.c.exception_id == exception_id))).first()
    return exception_of(row) if row else None


async def resolve_exception(
    db: Database, exception_id: str, reason: str, resolved_by: str
) -> ReconciliationException | None:
    """Resolve an open exception (None when there is no such exception); resolving a
    resolved one changes nothing and answers it as it is."""
    async with db.transaction() as tx:
        await tx.conn.execute(
            update(EXC)
            .where(EXC.c.exception_id == exception_id, EXC.c.status == "open")
            .values(
                status="resolved",
                resolved_at=datetime.now(UTC),
                resolution=reason,
                resolved_by=resolved_by,
            )
        )
        row = (await tx.conn.execute(select(EXC).where(EXC.c.exception_id == exception_id))).first()
    return exception_of(row) if row else None
