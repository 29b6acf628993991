"""Transactional outbox: events are rows written in the same transaction as the state
change; a relay publishes them to the bus and marks them. A crash between commit and
publish only delays the event (the relay picks it up on restart); a crash between
publish and mark republishes it (consumers drop the second copy in their inbox).

The relay coalesces: woken by a commit, it waits ``coalesce_seconds`` (a few ms) for
the commits right behind it, then publishes them as one batch per stream; the rows of
what it published are marked together, one transaction per ``poll_seconds``. The
committed events are handed to it in memory, so a batch costs one publish and a share
of a mark, not a read of the table as well: at 1,000 events/s the relay costs a fraction of the producing transactions themselves, for a
few ms of lag. The table stays the truth: passes over it publish whatever the hand-off
did not (after a crash, a failed publish, or from another process)."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Sequence
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    bindparam,
    func,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.bulk import BulkInsert
from shared.db import Database, Emitted, write_events_with
from shared.events.bus import EventBus
from shared.events.envelope import Event, decode_event, encode_event
from shared.waiting import sleep_or_wake

log = logging.getLogger("tally.outbox")

# Events held for the relay in memory at most; beyond, it reads them from the table.
HANDOFF_LIMIT = 10_000

# Test-only fault injection point (in the spirit of FoundationDB's "buggify"): with
# TALLY_FAULT_CRASH_BEFORE_PUBLISH=1 the relay kills its process (exit 137, as SIGKILL
# would) after it has read committed, unpublished rows and before it publishes them:
# the crash between commit and publish the outbox must survive. Used by
# tests/faults/test_producer_crash.py; never set it outside tests.
FAULT_CRASH_BEFORE_PUBLISH = "TALLY_FAULT_CRASH_BEFORE_PUBLISH"


def outbox_table(metadata: MetaData) -> Table:
    """The schema's outbox table, declared on first call; the transactions of every
    ``Database`` on ``metadata`` then store their emitted events in it."""
    if "outbox" in metadata.tables:
        return metadata.tables["outbox"]
    write_events_with(metadata, write_outbox)
    return Table(
        "outbox",
        metadata,
        Column("position", Integer, primary_key=True, autoincrement=True),
        Column("event_id", String(64), nullable=False, unique=True),
        Column("stream", String(100), nullable=False),
        Column("body", LargeBinary, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("published_at", DateTime(timezone=True), nullable=True, index=True),
    )


_INSERTS: dict[Table, BulkInsert] = {}


async def write_outbox(conn: AsyncConnection, metadata: MetaData, events: Emitted) -> None:
    table = outbox_table(metadata)
    write = _INSERTS.get(table)
    if write is None:
        write = _INSERTS[table] = BulkInsert(table, ["event_id", "stream", "body", "created_at"])
    # The time of the row to the microsecond (SQLite's CURRENT_TIMESTAMP keeps whole
    # seconds): the periodic pass tells a settled row from a fresh one by it.
    now = datetime.now(UTC)
    await write(
        conn,
        [
            {"event_id": event.id, "stream": stream, "body": encode_event(event), "created_at": now}
            for stream, event in events
        ],
    )


class OutboxRelay:
    """Publishes the outbox. Two ways in, one task, so never both at once:

    - the hand-off: every committed transaction of this process hands its events over
      (``Database.on_commit``); the relay publishes them and marks their rows, without
      reading the table;
    - a pass over the table (rows still unmarked, in position order): at start-up, every
      ``poll_seconds``, and whenever the hand-off was dropped (a publish failed, or the
      bus is so far behind that the hand-off outgrew its bound). It publishes what a
      crashed predecessor or another process left behind.

    An event both handed over and seen by a pass is published by the pass and dropped
    from the hand-off."""

    def __init__(
        self,
        db: Database,
        bus: EventBus,
        *,
        poll_seconds: float = 0.5,
        coalesce_seconds: float = 0.005,
        batch: int = 500,
        settle_seconds: float = 5.0,
    ) -> None:
        self.db = db
        self.bus = bus
        self.table = outbox_table(db.metadata)
        self.poll_seconds = poll_seconds
        self.coalesce_seconds = coalesce_seconds
        self.batch = batch
        self._wake = asyncio.Event()
        self._handed: list[tuple[str, Event]] = []
        self._handoff_dropped = True  # nothing is known yet: start with a pass
        # Periodic passes: on in one process per service (the leader, shared/leader.py);
        # every worker publishes its own commits' hand-off.
        self.passes = True
        self.settle_seconds = settle_seconds
        self._unmarked: list[str] = []  # published from the hand-off, rows not marked yet
        self._unmarked_since = 0.0
        db.on_commit(self._hand_over)
        self._crash_before_publish = os.environ.get(FAULT_CRASH_BEFORE_PUBLISH) == "1"
        # Every pass runs these: built once (decision 0043).
        table = self.table
        self._unpublished = (
            select(table.c.position, table.c.event_id, table.c.stream, table.c.body)
            .where(table.c.published_at.is_(None))
            .order_by(table.c.position)
            .limit(bindparam("at_most"))
        )
        self._settled = self._unpublished.where(table.c.created_at <= bindparam("cutoff"))
        self._mark_positions = (
            update(table)
            .where(table.c.position.in_(bindparam("at_positions", expanding=True)))
            .values(published_at=func.now())
        )
        self._mark_events = (
            update(table)
            .where(table.c.event_id.in_(bindparam("at_events", expanding=True)))
            .values(published_at=func.now())
        )

    def follow(self) -> None:
        """Another worker leads: publish only this process's hand-off (no passes, not
        even at start-up, so no row another worker is publishing goes out twice)."""
        self.passes = False
        self._handoff_dropped = False

    def lead(self) -> None:
        """This worker leads: periodic passes publish what any worker left behind."""
        self.passes = True

    def _hand_over(self, events: Sequence[tuple[str, Any]]) -> None:
        if len(self._handed) + len(events) > HANDOFF_LIMIT:
            self._drop_handoff()  # the table has them all
        else:
            self._handed.extend(events)
        self._wake.set()

    def _drop_handoff(self) -> None:
        self._handed = []
        self._handoff_dropped = True

    async def publish_pending(
        self, batch: int | None = None, *, settled_for: float | None = None
    ) -> int:
        """One pass over the table: publishes up to ``batch`` unmarked rows.

        A full pass (``settled_for`` None: at start-up and when the hand-off was
        dropped) reads in a write transaction: on SQLite a commit hands its events over
        before it frees the writer slot, so every row read here is either still in the
        hand-off (and dropped from it below) or was never handed over: none goes out
        twice. (On PostgreSQL a pass can rarely publish a just-committed event that the
        hand-off publishes again; consumers drop the copy.)

        The periodic pass (``settled_for`` seconds) takes only rows at least that old:
        a live hand-off, of this process or of another worker of the service,
        publishes its rows within milliseconds, so what is left that long was orphaned
        (a crash, a dropped hand-off). It reads without the writer's lock, so it never
        holds up the service's own writes."""
        at_most = self.batch if batch is None else batch
        if settled_for is None:
            async with self.db.transaction() as tx:
                rows = (await tx.conn.execute(self._unpublished, {"at_most": at_most})).all()
        else:
            cutoff = datetime.now(UTC) - timedelta(seconds=settled_for)
            async with self.db.read() as conn:
                found = await conn.execute(self._settled, {"at_most": at_most, "cutoff": cutoff})
                rows = found.all()
        unmarked = set(self._unmarked)
        rows = [row for row in rows if row.event_id not in unmarked]
        if not rows:
            return 0
        events = [(row.stream, decode_event(row.body)) for row in rows]
        await self._publish(events)
        async with self.db.transaction() as tx:
            await tx.conn.execute(
                self._mark_positions, {"at_positions": [row.position for row in rows]}
            )
        published = {event.id for _, event in events}
        self._handed = [(s, e) for s, e in self._handed if e.id not in published]
        return len(rows)

    async def publish_handed(self) -> int:
        """Publishes the events handed over since the last time; their rows are marked
        together with the next ones (``mark_published``), not one transaction each."""
        events, self._handed = self._handed[: self.batch], self._handed[self.batch :]
        if not events:
            return 0
        await self._publish(events)
        if not self._unmarked:
            self._unmarked_since = time.monotonic()
        self._unmarked.extend(event.id for _, event in events)
        if len(self._unmarked) >= self.batch:
            await self.mark_published()
        return len(events)

    async def mark_published(self) -> None:
        """Marks the rows of the hand-off's published events, in one transaction. Done
        at most ``poll_seconds`` after their publish, well inside ``settle_seconds``,
        so a periodic pass never sees them unmarked; a crash before it republishes
        them (at least once: consumers drop the copies)."""
        ids, self._unmarked = self._unmarked, []
        if not ids:
            return
        try:
            async with self.db.transaction() as tx:
                await tx.conn.execute(self._mark_events, {"at_events": ids})
        except BaseException:
            self._unmarked = ids + self._unmarked  # the next round marks them
            raise

    async def _publish(self, events: Sequence[tuple[str, Event]]) -> None:
        if self._crash_before_publish:  # test-only fault injection, see above
            os._exit(137)
        by_stream: dict[str, list[Event]] = {}
        for stream, event in events:
            by_stream.setdefault(stream, []).append(event)
        for stream, batch in by_stream.items():
            await self.bus.publish(stream, batch)

    async def run(self, stop: asyncio.Event) -> None:
        # Stopping wakes the loop at once instead of at its next pass (up to
        # ``poll_seconds`` later): a service shuts down without that wait.
        waker = asyncio.create_task(self._wake_on(stop))
        try:
            await self._run(stop)
        finally:
            waker.cancel()
            with suppress(Exception):  # stopping: unmarked rows only go out again
                await self.mark_published()

    async def _wake_on(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._wake.set()

    async def _run(self, stop: asyncio.Event) -> None:
        next_pass = 0.0
        while not stop.is_set():
            try:
                now = time.monotonic()
                if self._unmarked and now - self._unmarked_since >= self.poll_seconds:
                    await self.mark_published()
                if self._handoff_dropped or (self.passes and now >= next_pass):
                    full, self._handoff_dropped = self._handoff_dropped, False
                    next_pass = now + self.poll_seconds
                    published = await self.publish_pending(
                        settled_for=None if full else self.settle_seconds
                    )
                    if published >= self.batch:
                        self._handoff_dropped = True  # a backlog: more passes
                else:
                    published = await self.publish_handed()
            except Exception:
                log.exception("outbox relay failed; retrying")
                self._drop_handoff()
                await asyncio.sleep(1.0)
                continue
            if published >= self.batch or self._handoff_dropped:
                continue  # a backlog: the next batch at once
            if not self._handed:
                now = time.monotonic()
                until = next_pass - now if self.passes else self.poll_seconds
                if self._unmarked:
                    until = min(until, self._unmarked_since + self.poll_seconds - now)
                await sleep_or_wake(self._wake, max(0.0, until))
            if self.coalesce_seconds > 0 and self._handed:
                await asyncio.sleep(self.coalesce_seconds)  # the commits right behind it
