"""Transactional outbox: events are rows written in the same transaction as the state
change; a relay publishes them to the bus and marks them. A crash between commit and
publish only delays the event (the relay picks it up on restart); a crash between
publish and mark republishes it, and the bus stores an event id once."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db import Database, sleep_or_wake
from shared.events.bus import EventBus
from shared.events.envelope import Event, decode_event, encode_event

log = logging.getLogger("tally.outbox")

# Test-only fault injection point (in the spirit of FoundationDB's "buggify"): with
# TALLY_FAULT_CRASH_BEFORE_PUBLISH=1 the relay kills its process (exit 137, as SIGKILL
# would) after it has read committed, unpublished rows and before it publishes them:
# the crash between commit and publish the outbox must survive. Used by
# tests/faults/test_producer_crash.py; never set it outside tests.
FAULT_CRASH_BEFORE_PUBLISH = "TALLY_FAULT_CRASH_BEFORE_PUBLISH"


def outbox_table(metadata: MetaData) -> Table:
    if "outbox" in metadata.tables:
        return metadata.tables["outbox"]
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


async def write_outbox(
    conn: AsyncConnection, metadata: MetaData, events: list[tuple[str, Any]]
) -> None:
    table = outbox_table(metadata)
    await conn.execute(
        insert(table),
        [
            {"event_id": event.id, "stream": stream, "body": encode_event(event)}
            for stream, event in events
        ],
    )


class OutboxRelay:
    def __init__(self, db: Database, bus: EventBus, *, poll_seconds: float = 0.5) -> None:
        self.db = db
        self.bus = bus
        self.table = outbox_table(db.metadata)
        self.poll_seconds = poll_seconds
        self._wake = asyncio.Event()
        db.on_commit(self._wake.set)
        self._crash_before_publish = os.environ.get(FAULT_CRASH_BEFORE_PUBLISH) == "1"

    async def publish_pending(self, batch: int = 500) -> int:
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    select(self.table.c.position, self.table.c.stream, self.table.c.body)
                    .where(self.table.c.published_at.is_(None))
                    .order_by(self.table.c.position)
                    .limit(batch)
                )
            ).all()
        if not rows:
            return 0
        if self._crash_before_publish:  # test-only fault injection, see above
            os._exit(137)
        by_stream: dict[str, list[Event]] = {}
        for row in rows:
            by_stream.setdefault(row.stream, []).append(decode_event(row.body))
        for stream, events in by_stream.items():
            await self.bus.publish(stream, events)
        async with self.db.transaction() as tx:
            await tx.conn.execute(
                update(self.table)
                .where(self.table.c.position.in_([row.position for row in rows]))
                .values(published_at=func.now())
            )
        return len(rows)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                published = await self.publish_pending()
            except Exception:
                log.exception("outbox relay failed; retrying")
                published = 0
                await asyncio.sleep(1.0)
            if not published:
                await sleep_or_wake(self._wake, self.poll_seconds)
