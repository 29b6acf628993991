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
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import engine as sqlalchemy_async_engine

from shared.db import Database
from shared.db.checkpoints import CHECKPOINT_EVERY
from shared.db.savepoints import savepoint

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


@pytest.fixture
def spawned(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The functions SQLAlchemy's async layer ran in a greenlet, while the test runs."""
    names: list[str] = []
    real_spawn = sqlalchemy_async_engine.greenlet_spawn

    async def counted(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        names.append(getattr(fn, "__name__", repr(fn)))
        return await real_spawn(fn, *args, **kwargs)

    monkeypatch.setattr(sqlalchemy_async_engine, "greenlet_spawn", counted)
    return names


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
    assert "run_statement" in trips


def test_the_writers_statements_skip_the_async_layers_greenlet_and_keep_their_meaning(
    tmp_path: Path, spawned: list[str]
) -> None:
    """Inside the writer's transaction a statement runs straight on the loop (decision
    0050): no greenlet is spawned for it, and it answers as through the async layer:
    rows, rowcounts, a constraint's error that a savepoint undoes, the commit kept."""

    async def run() -> tuple[list[str], list[tuple[int, str]], int, bool]:
        db = await _open(tmp_path / "writer.db")
        try:
            async with db.transaction() as tx:
                spawned.clear()  # BEGIN goes through the async layer
                await tx.conn.execute(insert(notes), {"note_id": 1, "text": "kept"})
                updated = await tx.conn.execute(
                    update(notes).where(notes.c.note_id >= 0).values(text=notes.c.text + "!")
                )
                refused = False
                try:
                    async with savepoint(tx.conn):
                        await tx.conn.execute(insert(notes), {"note_id": 2, "text": "undone"})
                        await tx.conn.execute(insert(notes), {"note_id": 1, "text": "twice"})
                except IntegrityError:
                    refused = True
                inside = list(spawned)
            async with db.lookup() as conn:
                rows = [
                    tuple(r) for r in await conn.execute(select(notes).order_by(notes.c.note_id))
                ]
            return inside, rows, updated.rowcount, refused
        finally:
            await db.dispose()

    inside, rows, updated, refused = asyncio.run(run())
    assert inside == []
    assert updated == 2
    assert refused
    assert rows == [(0, "first!"), (1, "kept!")]


def test_a_lookup_keeps_its_connection_for_the_next_and_each_sees_the_last_commit(
    tmp_path: Path, spawned: list[str]
) -> None:
    """A lookup's connection is kept for the next lookup (decision 0051): no check-out,
    no greenlet, its BEGIN and ROLLBACK on the loop; still each lookup reads what was
    committed before it, lookups at the same time get connections of their own, and
    one whose body failed leaves no transaction open."""
    text_of = select(notes.c.text).where(notes.c.note_id == 0)

    async def run() -> dict[str, object]:
        db = await _open(tmp_path / "kept-lookups.db")
        try:
            seen = []
            spawned.clear()
            for n in range(3):
                async with db.transaction() as tx:
                    await tx.conn.execute(update(notes).values(text=f"version {n}"))
                async with db.lookup() as conn:
                    seen.append(await conn.scalar(text_of))
            writes_spawned = list(spawned)
            spawned.clear()
            async with db.lookup() as conn:
                kept_id = id(conn)
                await conn.scalar(text_of)
            lookup_spawned = list(spawned)
            async with db.lookup() as first, db.lookup() as second:
                both = [await first.scalar(text_of), await second.scalar(text_of)]
                apart = first is not second
            failed_id = 0
            try:
                async with db.lookup() as conn:
                    await conn.scalar(text_of)
                    failed_id = id(conn)
                    raise LookupError("the caller's own failure")
            except LookupError:
                pass
            async with db.lookup() as conn:
                reused = id(conn) in (kept_id, failed_id)
                left_open = conn.in_transaction()
            return {
                "seen": seen,
                "writes_spawned": writes_spawned,
                "lookup_spawned": lookup_spawned,
                "both": both,
                "apart": apart,
                "reused": reused,
                "left_open": left_open,
            }
        finally:
            await db.dispose()

    found = asyncio.run(run())
    assert found["seen"] == ["version 0", "version 1", "version 2"]
    assert found["writes_spawned"] == []  # the writer's BEGIN and COMMIT too (0051)
    assert found["lookup_spawned"] == []
    assert found["both"] == ["version 2", "version 2"]
    assert found["apart"]
    assert found["reused"]
    assert found["left_open"] is False


def test_the_writer_begins_on_the_loop_and_waits_its_turn_when_another_process_writes(
    tmp_path: Path, spawned: list[str]
) -> None:
    """The kept writer's BEGIN IMMEDIATE and COMMIT run on the loop without the async
    layer (decision 0051); while another process holds the write lock, BEGIN waits for
    it on the driver's thread, and the write lands once the lock is free."""
    path = tmp_path / "turns.db"

    async def run() -> tuple[list[str], list[str], float, list[str]]:
        db = await _open(path)
        try:
            spawned.clear()
            async with db.transaction() as tx:
                await tx.conn.execute(insert(notes), {"note_id": 1, "text": "alone"})
            alone = list(spawned)
            other = sqlite3.connect(path, isolation_level=None)
            other.execute("BEGIN IMMEDIATE")  # another process writing
            asyncio.get_running_loop().call_later(0.3, other.commit)
            spawned.clear()
            started = asyncio.get_running_loop().time()
            async with db.transaction() as tx:
                await tx.conn.execute(insert(notes), {"note_id": 2, "text": "waited"})
            waited = asyncio.get_running_loop().time() - started
            other.close()
            async with db.lookup() as conn:
                texts = list((await conn.execute(select(notes.c.text))).scalars())
            return alone, list(spawned), waited, texts
        finally:
            await db.dispose()

    alone, busy, waited, texts = asyncio.run(run())
    assert alone == []
    assert busy  # the BEGIN that had to wait took the async layer's way
    assert waited >= 0.25
    assert texts == ["first", "alone", "waited"]


def test_committed_rows_reach_the_database_file_while_it_is_open(
    tmp_path: Path, driver_trips: list[str]
) -> None:
    path = tmp_path / "checkpoints.db"
    copy = tmp_path / "file-alone.db"

    async def run() -> list[str]:
        db = await _open(path)
        try:
            driver_trips.clear()
            for n in range(1, CHECKPOINT_EVERY + 1):
                async with db.transaction() as tx:
                    await tx.conn.execute(insert(notes), {"note_id": n, "text": f"note {n}"})
            # The database file alone, as a backup that copies it without the WAL would.
            shutil.copyfile(path, copy)
            return list(driver_trips)
        finally:
            await db.dispose()

    trips = asyncio.run(run())
    assert trips == []  # the checkpoint runs on a connection and a thread of its own
    alone = sqlite3.connect(copy)
    try:
        (count,) = alone.execute("SELECT count(*) FROM notes").fetchone()
    finally:
        alone.close()
    # Every commit up to the 100th (the first one made by _open), which the checkpoint
    # followed; the last one is still only in the WAL.
    assert count == CHECKPOINT_EVERY


def test_the_wal_starts_over_instead_of_growing(tmp_path: Path) -> None:
    """Under a steady stream of commits the WAL file is reused from its start after
    each checkpoint; it does not grow with every commit of the day."""
    path = tmp_path / "steady.db"
    wal = Path(f"{path}-wal")

    async def run() -> tuple[int, int]:
        db = await _open(path)
        try:
            note = 0

            async def commits(count: int) -> None:
                nonlocal note
                for _ in range(count):
                    note += 1
                    async with db.transaction() as tx:
                        await tx.conn.execute(insert(notes), {"note_id": note, "text": "x" * 40})
                    async with db.lookup() as conn:  # readers come and go meanwhile
                        await conn.scalar(select(notes.c.text).where(notes.c.note_id == note))

            await commits(2 * CHECKPOINT_EVERY)
            after_two = wal.stat().st_size
            await commits(8 * CHECKPOINT_EVERY)
            return after_two, wal.stat().st_size
        finally:
            await db.dispose()

    after_two, after_ten = asyncio.run(run())
    assert after_two > 0
    assert after_ten <= after_two * 1.5, (after_two, after_ten)
