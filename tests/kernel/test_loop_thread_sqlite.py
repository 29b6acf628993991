"""SQLite work that runs on the event loop's thread (decisions 0017, 0046): a lookup (a
read of a few rows by key) and the kept writer's whole transaction, COMMIT included,
make no trip to aiosqlite's thread, and still read and keep what was committed. The
writer's commits run no WAL checkpoint themselves; the database checkpoints on a
thread, so committed rows reach the database file while the service runs."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from pathlib import Path

import aiosqlite
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select

from shared.db import Database
from shared.db.database import CHECKPOINT_EVERY

metadata = MetaData()
notes = Table(
    "notes",
    metadata,
    Column("note_id", Integer, primary_key=True),
    Column("text", String(50), nullable=False),
)


@pytest.fixture
def driver_trips(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The calls handed to aiosqlite's thread, by name, while the test runs."""
    trips: list[str] = []
    real = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        trips.append(getattr(fn, "__name__", repr(fn)))
        return await real(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return trips


async def _open(path: Path) -> Database:
    db = Database(f"sqlite+aiosqlite:///{path}", metadata)
    await db.create_schema()
    async with db.transaction() as tx:  # the kept writer is opened by its first use
        await tx.conn.execute(insert(notes), {"note_id": 0, "text": "first"})
    async with db.lookup() as conn:  # and a pooled read connection by its first use
        await conn.scalar(select(notes.c.text))
    return db


def test_a_lookup_reads_the_last_commit_without_a_trip_to_the_driver_thread(
    tmp_path: Path, driver_trips: list[str]
) -> None:
    async def run() -> tuple[str | None, str | None, list[str]]:
        db = await _open(tmp_path / "lookups.db")
        try:
            driver_trips.clear()
            async with db.transaction() as tx:
                await tx.conn.execute(insert(notes), {"note_id": 1, "text": "committed"})
            async with db.lookup() as conn:
                seen = await conn.scalar(select(notes.c.text).where(notes.c.note_id == 1))
            # A writer in the middle of its transaction: the lookup neither waits for
            # it nor sees its uncommitted row.
            async with db.transaction() as tx:
                await tx.conn.execute(insert(notes), {"note_id": 2, "text": "uncommitted"})
                async with db.lookup() as conn:
                    unseen = await conn.scalar(select(notes.c.text).where(notes.c.note_id == 2))
            return seen, unseen, list(driver_trips)
        finally:
            await db.dispose()  # closing the connections is a trip of its own

    seen, unseen, trips = asyncio.run(run())
    assert seen == "committed"
    assert unseen is None
    assert trips == []


def test_a_read_keeps_the_driver_thread(tmp_path: Path, driver_trips: list[str]) -> None:
    """``read()`` is for reads that scan or report: they must not block the loop."""

    async def run() -> tuple[int, list[str]]:
        db = await _open(tmp_path / "reads.db")
        try:
            driver_trips.clear()
            async with db.read() as conn:
                rows = len((await conn.execute(select(notes))).all())
            return rows, list(driver_trips)
        finally:
            await db.dispose()

    rows, trips = asyncio.run(run())
    assert rows == 1
    assert "_statement_on_driver_thread" in trips


def test_committed_rows_reach_the_database_file_while_it_is_open(
    tmp_path: Path, driver_trips: list[str]
) -> None:
    path = tmp_path / "checkpoints.db"
    copy = tmp_path / "file-alone.db"

    async def run() -> None:
        db = await _open(path)
        try:
            driver_trips.clear()
            for n in range(1, CHECKPOINT_EVERY + 1):
                async with db.transaction() as tx:
                    await tx.conn.execute(insert(notes), {"note_id": n, "text": f"note {n}"})
            assert db._checkpointing is not None
            await db._checkpointing
            # The checkpoint was the only work handed to a driver thread.
            assert driver_trips == ["_wal_checkpoint"], driver_trips
            # The database file alone, as a backup that copies it without the WAL would.
            shutil.copyfile(path, copy)
        finally:
            await db.dispose()

    asyncio.run(run())
    alone = sqlite3.connect(copy)
    try:
        (count,) = alone.execute("SELECT count(*) FROM notes").fetchone()
    finally:
        alone.close()
    # Every commit up to the checkpoint is in the file (the first one made by _open).
    assert count >= CHECKPOINT_EVERY
