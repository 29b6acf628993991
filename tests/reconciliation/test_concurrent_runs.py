"""Reconciliation runs at the same time (two replicas of the service, or the scheduled
run and one asked for through the API) on one database, SQLite and a real PostgreSQL:
each drifting position has exactly one open exception, the database itself refuses a
second one, and a database created before that rule gets it on start-up.

The runs call the service's ``reconcile`` each with its own ``Database`` (engine and
pool, as separate processes would have) and stock figures the test fixes: ERP and WMS
agree on 10 units where the projection has none, long enough ago to be drift."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, insert, inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.schema import CreateTable

from process_apis.availability.db import (
    ONE_OPEN_EXCEPTION,
    metadata,
    reconciliation_exceptions,
    upgrade_schema,
)
from process_apis.availability.reconciliation.schemas import RunReport
from process_apis.availability.reconciliation.service import reconcile, resolve_exception
from process_apis.availability.reconciliation.sources import Figures
from shared.db import Database
from shared.settings import Settings

EXC = reconciliation_exceptions
RUNS = 4
DRIFTING = [(f"SKU-{n:02d}", location) for n in range(15) for location in ("WH1", "WH2")]
CHANGED = datetime.now(UTC) - timedelta(hours=1)  # outside any settlement window


class Sources:
    """ERP and WMS figures of the drifting positions; every run reads them at the same
    moment (a barrier), so all of them then write their exceptions at once."""

    def __init__(self, barrier: asyncio.Barrier) -> None:
        self.barrier = barrier

    async def erp_on_hand(self) -> Figures:
        await self.barrier.wait()
        return dict.fromkeys(DRIFTING, (10, CHANGED))

    async def wms_on_hand(self) -> Figures:
        return dict.fromkeys(DRIFTING, (10, CHANGED))


@pytest.fixture
async def databases(settings: Settings) -> AsyncIterator[list[Database]]:
    """One database, as many services on it as there are runs."""
    dbs = [Database(settings.database_url, metadata) for _ in range(RUNS)]
    try:
        await dbs[0].create_schema()
        yield dbs
    finally:
        for db in dbs:
            await db.dispose()


async def run_together(dbs: Sequence[Database]) -> list[RunReport]:
    barrier = asyncio.Barrier(len(dbs))
    return await asyncio.gather(
        *(reconcile(db, Sources(barrier), window_seconds=0, threshold=0) for db in dbs)
    )


async def open_per_item(db: Database) -> dict[tuple[str, str], int]:
    async with db.read() as conn:
        rows = await conn.execute(
            select(EXC.c.sku, EXC.c.location_id, func.count())
            .where(EXC.c.status == "open")
            .group_by(EXC.c.sku, EXC.c.location_id)
        )
        return {(r[0], r[1]): int(r[2]) for r in rows}


async def count_rows(db: Database) -> int:
    async with db.read() as conn:
        return int(await conn.scalar(select(func.count()).select_from(EXC)) or 0)


async def test_runs_at_the_same_time_open_one_exception_per_item(
    databases: list[Database],
) -> None:
    reports = await run_together(databases)

    assert await open_per_item(databases[0]) == dict.fromkeys(DRIFTING, 1)
    assert await count_rows(databases[0]) == len(DRIFTING)
    # Every run saw all the drift and answers the one exception of each position.
    ids = {(x.sku, x.location_id): x.exception_id for x in reports[0].exceptions}
    assert sorted(ids) == DRIFTING
    for report in reports:
        assert {(x.sku, x.location_id): x.exception_id for x in report.exceptions} == ids
        assert all(x.status == "open" and x.largest_difference == 10 for x in report.exceptions)

    # Resolved exceptions do not count: the next runs open one new exception for each
    # resolved position and refresh the others.
    resolved = DRIFTING[::3]
    for key in resolved:
        done = await resolve_exception(databases[0], ids[key], "counted again", "tester")
        assert done is not None and done.status == "resolved"
    reports = await run_together(databases)

    assert await open_per_item(databases[0]) == dict.fromkeys(DRIFTING, 1)
    assert await count_rows(databases[0]) == len(DRIFTING) + len(resolved)
    again = {(x.sku, x.location_id): x.exception_id for x in reports[0].exceptions}
    for report in reports:
        assert {(x.sku, x.location_id): x.exception_id for x in report.exceptions} == again
    assert {k for k in DRIFTING if again[k] != ids[k]} == set(resolved)


def exception_row(exception_id: str, sku: str, status: str, at: datetime) -> dict[str, object]:
    return {
        "exception_id": exception_id,
        "sku": sku,
        "location_id": "WH1",
        "status": status,
        "projection_on_hand": 0,
        "largest_difference": 1,
        "evidence": "{}",
        "run_id": "REC-test",
        "detected_at": at,
        "last_seen_at": at,
    }


async def test_the_database_refuses_a_second_open_exception(databases: list[Database]) -> None:
    db, now = databases[0], datetime.now(UTC)
    async with db.transaction() as tx:
        await tx.conn.execute(insert(EXC).values(exception_row("RX-1", "A", "open", now)))
        await tx.conn.execute(insert(EXC).values(exception_row("RX-2", "A", "resolved", now)))
        await tx.conn.execute(insert(EXC).values(exception_row("RX-3", "A", "resolved", now)))
        await tx.conn.execute(insert(EXC).values(exception_row("RX-4", "B", "open", now)))
    with pytest.raises(IntegrityError):
        async with db.transaction() as tx:
            await tx.conn.execute(insert(EXC).values(exception_row("RX-5", "A", "open", now)))
    assert await open_per_item(db) == {("A", "WH1"): 1, ("B", "WH1"): 1}


async def test_an_older_database_gets_the_index_and_keeps_the_first_duplicate(
    settings: Settings,
) -> None:
    """Created before the index: the table without it, and the duplicates that
    concurrent runs could leave there."""
    db, now = Database(settings.database_url, metadata), datetime.now(UTC)
    try:
        async with db.engine.begin() as conn:
            await conn.execute(CreateTable(EXC))  # no indexes
            for n, sku in enumerate(["A", "A", "A", "B"]):
                row = exception_row(f"RX-{n}", sku, "open", now + timedelta(seconds=n))
                await conn.execute(insert(EXC).values(row))
        await db.create_schema()  # the table exists: create_all adds no index to it
        await upgrade_schema(db)
        await upgrade_schema(db)  # idempotent

        async with db.read() as conn:
            rows = (await conn.execute(select(EXC).order_by(EXC.c.exception_id))).all()
            indexes = await conn.run_sync(lambda c: inspect(c).get_indexes(EXC.name))
        assert ONE_OPEN_EXCEPTION.name in {i["name"] for i in indexes}
        assert [(r.exception_id, r.status) for r in rows] == [
            ("RX-0", "open"),
            ("RX-1", "resolved"),
            ("RX-2", "resolved"),
            ("RX-3", "open"),
        ]
        assert {r.resolution for r in rows if r.status == "resolved"} == {
            "Duplicate of RX-0, opened by a concurrent run."
        }
        with pytest.raises(IntegrityError):
            async with db.transaction() as tx:
                await tx.conn.execute(insert(EXC).values(exception_row("RX-9", "B", "open", now)))

        # And reconciliation records its exceptions there (its upsert needs the index).
        (report,) = await run_together([db])
        assert len(report.exceptions) == len(DRIFTING)
    finally:
        await db.dispose()
