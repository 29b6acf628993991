"""The transactional outbox and its relay (shared/events/outbox.py), and the SQLite
transaction plumbing under them (shared/db/), on a real database file and the real
embedded log."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select

from shared.db import Database
from shared.events.envelope import Event
from shared.events.outbox import OutboxRelay, outbox_table
from shared.events.sqlite_log import SqliteEventLog
from tests.support.events import thing_event
from tests.support.polling import eventually_async

STREAM = "tally.test"


class CountingLog(SqliteEventLog):
    """The real log, counting publish calls."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, poll_interval=0.005)
        self.publishes: list[int] = []

    async def publish(self, stream: str, events: Sequence[Event]) -> None:
        self.publishes.append(len(events))
        await super().publish(stream, events)


@dataclass
class Producer:
    db: Database
    things: Table
    log: CountingLog

    async def change(self, n: int, *, fail: bool = False) -> None:
        async with self.db.transaction() as tx:
            await tx.conn.execute(insert(self.things).values(n=n))
            tx.emit(STREAM, thing_event("s", n))
            if fail:
                raise RuntimeError("the state change fails after its emit")

    async def unpublished(self) -> int:
        table = outbox_table(self.db.metadata)
        async with self.db.read() as conn:
            query = select(func.count()).where(table.c.published_at.is_(None))
            return int(await conn.scalar(query) or 0)

    async def stored(self) -> list[int]:
        return [e.sequence for _, _, e in await self.log.read_all(STREAM, limit=1000)]


@pytest.fixture
async def producer(tmp_path: Path) -> AsyncIterator[Producer]:
    metadata = MetaData()
    things = Table("things", metadata, Column("n", Integer, primary_key=True))
    Table("notes", metadata, Column("id", Integer, primary_key=True), Column("text", String(50)))
    outbox_table(metadata)
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'producer.db'}", metadata)
    await db.create_schema()
    log = CountingLog(tmp_path / "events.db")
    try:
        yield Producer(db, things, log)
    finally:
        await log.close()
        await db.dispose()


async def test_the_event_row_commits_and_rolls_back_with_the_state_change(
    producer: Producer,
) -> None:
    await producer.change(1)
    with pytest.raises(RuntimeError):
        await producer.change(2, fail=True)
    assert await producer.unpublished() == 1  # only the committed change's event
    relay = OutboxRelay(producer.db, producer.log)
    assert await relay.publish_pending() == 1
    assert await producer.stored() == [1]
    assert await producer.unpublished() == 0
    assert await relay.publish_pending() == 0


async def test_events_committed_before_a_crash_are_published_by_the_next_relay(
    producer: Producer,
) -> None:
    # Committed while no relay ran (the process died between commit and publish).
    for n in range(1, 6):
        await producer.change(n)
    stop = asyncio.Event()
    relay = OutboxRelay(producer.db, producer.log, poll_seconds=0.05)
    task = asyncio.create_task(relay.run(stop))
    try:

        async def all_published() -> bool:
            return await producer.stored() == [1, 2, 3, 4, 5]

        assert await eventually_async(all_published)
        assert await producer.unpublished() == 0
    finally:
        stop.set()
        await task


async def test_the_relay_coalesces_a_burst_of_commits_into_one_batch(
    producer: Producer,
) -> None:
    # A generous coalescing window: the ten commits land inside it.
    relay = OutboxRelay(producer.db, producer.log, poll_seconds=30, coalesce_seconds=2.0)
    passes, marks = 0, 0
    table_pass, handed = relay.publish_pending, relay.publish_handed

    async def counting_pass(batch: int | None = None, *, settled_for: float | None = None) -> int:
        nonlocal passes
        passes += 1
        return await table_pass(batch, settled_for=settled_for)

    async def counting_handed() -> int:
        nonlocal marks
        published = await handed()
        marks += published > 0
        return published

    relay.publish_pending = counting_pass  # type: ignore[method-assign]
    relay.publish_handed = counting_handed  # type: ignore[method-assign]
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:

        async def idle() -> bool:  # its first pass found nothing: it waits for a commit
            return passes >= 1

        assert await eventually_async(idle)
        for n in range(1, 11):
            await producer.change(n)

        async def all_published() -> bool:
            return await producer.stored() == list(range(1, 11))

        assert await eventually_async(all_published)
    finally:
        stop.set()
        await task
    assert producer.log.publishes == [10]  # one publish of the whole burst
    assert marks == 1  # and one transaction marking it
    assert passes == 1  # handed over in memory: the table was not read again
    assert await producer.unpublished() == 0


async def test_left_over_rows_and_handed_over_events_go_out_once_in_order(
    producer: Producer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(1, 6):  # committed before the relay started: only in the table
        await producer.change(n)
    relay = OutboxRelay(producer.db, producer.log, poll_seconds=0.05, coalesce_seconds=0.001)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        for n in range(6, 31):
            await producer.change(n)
        # More than the hand-off may hold: the relay falls back to the table.
        monkeypatch.setattr("shared.events.outbox.HANDOFF_LIMIT", 3)
        for n in range(31, 61):
            await producer.change(n)

        async def all_published() -> bool:
            return await producer.unpublished() == 0 and len(await producer.stored()) >= 60

        assert await eventually_async(all_published)
    finally:
        stop.set()
        await task
    assert await producer.stored() == list(range(1, 61))


async def test_a_connection_goes_back_to_the_pool_outside_any_transaction(
    producer: Producer,
) -> None:
    notes = producer.db.metadata.tables["notes"]
    async with producer.db.read() as conn:
        await conn.execute(select(notes))  # a deferred read transaction is open here

    async def fails() -> None:
        async with producer.db.transaction() as tx:
            await tx.conn.execute(insert(notes).values(text="never"))
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        await fails()
    async with producer.db.transaction() as tx:
        await tx.conn.execute(insert(notes).values(text="kept"))
    async with producer.db.engine.connect() as conn:
        raw = await conn.get_raw_connection()
        assert raw.driver_connection is not None
        assert not raw.driver_connection.in_transaction
        rows = (await conn.execute(select(notes.c.text))).scalars().all()
    assert rows == ["kept"]


async def test_a_writer_cancelled_mid_transaction_leaves_nothing_behind(
    producer: Producer,
) -> None:
    notes = producer.db.metadata.tables["notes"]
    inside = asyncio.Event()

    async def slow_writer() -> None:
        async with producer.db.transaction() as tx:
            await tx.conn.execute(insert(notes).values(text="cancelled"))
            inside.set()
            await asyncio.sleep(60)

    task = asyncio.create_task(slow_writer())
    await inside.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with producer.db.transaction() as tx:
        await tx.conn.execute(insert(notes).values(text="next"))
    async with producer.db.read() as conn:
        rows = (await conn.execute(select(notes.c.text))).scalars().all()
    assert rows == ["next"]


async def test_a_follower_publishes_its_own_commits_and_the_leader_what_was_left(
    producer: Producer,
) -> None:
    # Rows another worker committed and has not published (in its hand-off, or lost
    # with it): a follower must leave them alone, not even a start-up pass.
    for n in (1, 2, 3):
        await producer.change(n)
    relay = OutboxRelay(
        producer.db, producer.log, poll_seconds=0.05, coalesce_seconds=0.001, settle_seconds=0.5
    )
    relay.follow()
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        for n in (4, 5):  # this worker's own commits: handed over, published at once
            await producer.change(n)

        async def own_published() -> bool:
            return await producer.stored() == [4, 5]

        assert await eventually_async(own_published)
        await asyncio.sleep(0.3)
        assert await producer.stored() == [4, 5]
        assert await producer.unpublished() == 3

        # Leading, its periodic passes take the rows left at least settle_seconds.
        relay.lead()

        async def all_published() -> bool:
            return await producer.unpublished() == 0

        assert await eventually_async(all_published)
    finally:
        stop.set()
        await task
    assert await producer.stored() == [4, 5, 1, 2, 3]  # each once


async def test_a_periodic_pass_leaves_rows_younger_than_the_settling_time(
    producer: Producer,
) -> None:
    relay = OutboxRelay(producer.db, producer.log, settle_seconds=30)
    for n in (1, 2):
        await producer.change(n)
    relay._drop_handoff()  # as if the hand-off were another process's: only the table
    assert await relay.publish_pending(settled_for=30) == 0  # too young
    assert await producer.stored() == []
    assert await relay.publish_pending() == 2  # a full pass takes them
    assert await producer.stored() == [1, 2]
