"""Inbox and consumer loop: an event's id is recorded in the same transaction as the
handler's effects, and an event older than what was applied for its subject is
acknowledged without effect (counted as stale)."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from prometheus_client import Counter
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from shared.correlation import correlation_id
from shared.db import Database, Tx
from shared.events.bus import Delivery, EventBus
from shared.events.envelope import Event

log = logging.getLogger("tally.inbox")

EVENTS_HANDLED = Counter(
    "tally_events_handled_total", "Events consumed, by outcome", ["group", "type", "outcome"]
)


def inbox_tables(metadata: MetaData) -> tuple[Table, Table]:
    if "inbox" in metadata.tables:
        return metadata.tables["inbox"], metadata.tables["applied_sequences"]
    inbox = Table(
        "inbox",
        metadata,
        Column("event_id", String(64), primary_key=True),
        Column("type", String(100), nullable=False),
        Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
    applied = Table(
        "applied_sequences",
        metadata,
        Column("subject_key", String(300), primary_key=True),
        Column("sequence", Integer, nullable=False),
    )
    return inbox, applied


class EventHandler(Protocol):
    async def prepare(self, event: Event) -> Any:
        """Runs outside the transaction: idempotent calls to other services only."""

    async def apply(self, tx: Tx, event: Event, prepared: Any) -> None:
        """Runs inside the transaction that records the event in the inbox."""


class ApplyOnly:
    """Adapts a plain ``async def fn(tx, event)`` into an EventHandler."""

    def __init__(self, fn: Callable[[Tx, Event], Awaitable[None]]) -> None:
        self.fn = fn

    async def prepare(self, event: Event) -> None:
        return None

    async def apply(self, tx: Tx, event: Event, prepared: Any) -> None:
        await self.fn(tx, event)


class EventConsumer:
    def __init__(
        self,
        *,
        db: Database,
        bus: EventBus,
        group: str,
        streams: Sequence[str],
        handlers: dict[str, EventHandler],
        batch: int = 100,
        block_ms: int = 200,
    ) -> None:
        self.db = db
        self.bus = bus
        self.group = group
        self.streams = list(streams)
        self.handlers = handlers
        self.batch = batch
        self.block_ms = block_ms
        self.consumer_name = f"{socket.gethostname()}-{os.getpid()}"
        self.inbox, self.applied = inbox_tables(db.metadata)

    def _insert_ignore(self, table: Table) -> Any:
        return (sqlite_insert if self.db.sqlite else pg_insert)(table)

    async def handle(self, delivery: Delivery) -> str:
        event = delivery.event
        handler = self.handlers.get(event.type)
        if handler is None:
            return "ignored"
        token = correlation_id.set(event.correlationid)
        try:
            async with self.db.read() as conn:
                seen = await conn.scalar(
                    select(self.inbox.c.event_id).where(self.inbox.c.event_id == event.id)
                )
            if seen:
                return "duplicate"
            prepared = await handler.prepare(event)
            async with self.db.transaction() as tx:
                inserted = await tx.conn.execute(
                    self._insert_ignore(self.inbox)
                    .values(event_id=event.id, type=event.type)
                    .on_conflict_do_nothing()
                )
                if inserted.rowcount == 0:
                    return "duplicate"
                subject_key = f"{event.source}|{event.subject}"
                last = await tx.conn.scalar(
                    select(self.applied.c.sequence).where(self.applied.c.subject_key == subject_key)
                )
                if last is not None and event.sequence <= last:
                    return "stale"
                await handler.apply(tx, event, prepared)
                upsert = self._insert_ignore(self.applied).values(
                    subject_key=subject_key, sequence=event.sequence
                )
                await tx.conn.execute(
                    upsert.on_conflict_do_update(
                        index_elements=["subject_key"], set_={"sequence": event.sequence}
                    )
                )
            return "applied"
        finally:
            correlation_id.reset(token)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                deliveries = await self.bus.read_group(
                    self.group, self.consumer_name, self.streams, self.batch, self.block_ms
                )
            except Exception:
                log.exception("reading the bus failed; retrying")
                await asyncio.sleep(1.0)
                continue
            for delivery in deliveries:
                if stop.is_set():
                    return
                try:
                    outcome = await self.handle(delivery)
                except Exception:
                    # Not acked: the bus redelivers it after the visibility timeout.
                    log.exception(
                        "handler failed for %s %s (delivery %d)",
                        delivery.event.type,
                        delivery.event.id,
                        delivery.delivery_count,
                    )
                    EVENTS_HANDLED.labels(self.group, delivery.event.type, "failed").inc()
                    continue
                EVENTS_HANDLED.labels(self.group, delivery.event.type, outcome).inc()
                await self.bus.ack(self.group, delivery.stream, [delivery.entry_id])
