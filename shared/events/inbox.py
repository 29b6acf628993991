"""Inbox and consumer loop.

Every event applies at most once: its id is recorded in the inbox in the same
transaction as the handler's effects, and a second delivery of the id is a duplicate.

Ordering is declared per event type (``ordered_types``):

- an ORDERED type applies strictly in ``sequence`` order per ``(source, subject)``:
  ``sequence <= last applied`` is acknowledged without effect (``stale``); a gap
  (``sequence > last + 1``) is parked: held in the consumer's waiting room, which
  applies it as soon as its predecessor applies in this process, and left pending on
  the bus with a short, growing delay (for a predecessor applied by another process,
  or after a restart), up to ``max_parks`` deliveries, then dead-lettered with
  "sequence gap never filled"; ``sequence == last + 1`` applies and becomes the last
  applied;
- an UNORDERED type (effects that commute, e.g. one invoice per shipment) is only
  deduplicated by event id; no sequence is checked or recorded.

A handler failure is never acknowledged: the entry is left pending and redelivered
after ``min(cap, base * 2**(n - 1)) * jitter`` (jitter uniform in [0.5, 1]) without
blocking the entries behind it, and after ``max_deliveries`` failed deliveries it moves
to the stream's dead letters with the exception's type, message and a short traceback.
A handler that cannot apply an event *yet* (a dependency behind or unreachable) raises
``NotYet`` (a downstream's 503 counts as one): retried with the same backoff, but
counted against ``max_parks`` like a gap. Deliveries lost to a crashed consumer
(reclaimed after the visibility timeout) count as failed ones, so an event that kills
its consumer ends in the dead letters too.

Events of handlers without a prepare step (``ApplyOnly``) apply in runs, several per
transaction; a run whose handler raises is rolled back and redone around the failing
event, whose exception is its delivery's own failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
import traceback
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple, Protocol

from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    delete,
    func,
    insert,
    select,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from shared.correlation import correlation_id
from shared.db import Database, Tx
from shared.events.bus import DEFAULT_MAX_DELIVERIES, Delivery, EventBus, GroupLag
from shared.events.envelope import Event
from shared.problems import ProblemError
from shared.settings import Settings

log = logging.getLogger("tally.inbox")

# Outcomes of one delivery (the ``outcome`` label of tally_events_handled_total).
APPLIED = "applied"  # the effects committed with the inbox row
DUPLICATE = "duplicate"  # the event id is in the inbox already: acked, no effect
STALE = "stale"  # ordered, sequence <= last applied: acked, no effect
PARKED = "parked"  # ordered, a gap before it (or NotYet): pending, redelivered later
RETRIED = "retried"  # the handler failed: pending, redelivered after a backoff
DEAD_LETTERED = "dead_lettered"  # moved to the stream's dead letters (and acked)
IGNORED = "ignored"  # no handler for the type: acked

EVENTS_HANDLED = Counter(
    "tally_events_handled_total", "Events consumed, by outcome", ["group", "type", "outcome"]
)
HANDLER_SECONDS = Histogram(
    "tally_event_handler_seconds",
    "Time to handle one delivery (prepare, transaction, retry or dead-letter decision)",
    ["group", "type"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
# Set by the worker that leads (with several workers, /metrics merges the processes'
# samples: these keep the live leader's latest value).
EVENTS_PENDING = Gauge(
    "tally_events_pending",
    "Entries delivered to the group, not yet acked",
    ["group", "stream"],
    multiprocess_mode="livemostrecent",
)
EVENTS_LAG = Gauge(
    "tally_events_lag",
    "Entries of the stream not yet delivered to the group",
    ["group", "stream"],
    multiprocess_mode="livemostrecent",
)
EVENTS_OLDEST_PENDING = Gauge(
    "tally_events_oldest_pending_seconds",
    "Age of the group's oldest unacked entry (0 when none)",
    ["group", "stream"],
    multiprocess_mode="livemostrecent",
)

_REASON_LIMIT = 2000  # characters of a dead letter's reason
_WAITING_ROOM_LIMIT = 10_000  # early events held in memory per consumer


class NotYet(Exception):
    """Raised by a handler when the event cannot apply *yet* (a dependency is behind or
    unreachable): redelivered with backoff, dead-lettered only after ``max_parks``."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_deliveries: int = DEFAULT_MAX_DELIVERIES  # failed deliveries before the dead letters
    base_seconds: float = 0.2
    cap_seconds: float = 30.0
    max_parks: int = 100  # gap (or NotYet) deliveries before the dead letters
    # A parked gap comes back after 0.1 s doubling to 5 s: the waiting room applies it
    # as soon as its predecessor applies in this process; the bus's redelivery is for
    # a predecessor applied by another process of the group, or after a restart.
    park_base_seconds: float = 0.1
    park_cap_seconds: float = 5.0

    def retry_delay(self, failures: int, rng: random.Random) -> float:
        """Backoff after the ``failures``-th failed delivery, with jitter in [0.5, 1]."""
        nominal = min(self.cap_seconds, self.base_seconds * 2.0 ** max(failures - 1, 0))
        return nominal * rng.uniform(0.5, 1.0)

    def park_delay(self, parks: int, rng: random.Random) -> float:
        nominal = min(self.park_cap_seconds, self.park_base_seconds * 2.0 ** max(parks - 1, 0))
        return nominal * rng.uniform(0.5, 1.0)

    def outlasting(self, visibility_timeout: float) -> RetryPolicy:
        """This policy, with ``max_parks`` raised (never lowered) so that a parked gap
        waits, even at the shortest jitter, more than twice the bus's visibility
        timeout: a predecessor held by a consumer that died comes back after one
        timeout, and must not find its successor dead-lettered as "gap never filled".
        The bus caps each delay at the timeout."""
        waited, parks = 0.0, 0
        while waited <= 2 * visibility_timeout:
            parks += 1
            nominal = min(self.park_cap_seconds, self.park_base_seconds * 2.0 ** (parks - 1))
            waited += 0.5 * min(nominal, visibility_timeout)
        # The max_parks-th delivery is dead-lettered instead of parked again.
        return replace(self, max_parks=max(self.max_parks, parks + 1))


def retry_policy(settings: Settings) -> RetryPolicy:
    """The service's policy from its settings; the gap budget outlasts the bus's
    visibility timeout (see ``RetryPolicy.outlasting``)."""
    return RetryPolicy(
        max_deliveries=settings.events_max_deliveries,
        base_seconds=settings.events_retry_base_seconds,
        cap_seconds=settings.events_retry_cap_seconds,
        max_parks=settings.events_max_parks,
    ).outlasting(settings.bus_visibility_timeout)


class InboxTables(NamedTuple):
    inbox: Table
    applied: Table
    attempts: Table


def inbox_tables(metadata: MetaData) -> InboxTables:
    if "inbox" in metadata.tables:
        return InboxTables(
            metadata.tables["inbox"],
            metadata.tables["applied_sequences"],
            metadata.tables["event_attempts"],
        )
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
    # Deliveries that were parked (a gap, or NotYet) per bus entry: the bus's delivery
    # count includes them, and they must not count toward max_deliveries. Rows go when
    # the event applies, settles without effect, or is dead-lettered.
    attempts = Table(
        "event_attempts",
        metadata,
        Column("stream", String(100), primary_key=True),
        Column("entry_id", String(64), primary_key=True),
        Column("event_id", String(64), nullable=False, index=True),
        Column("parks", Integer, nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
    return InboxTables(inbox, applied, attempts)


class EventHandler(Protocol):
    """A handler may set ``prepares = False`` when ``prepare`` does nothing (returns
    None): its events are then applied in runs, several per transaction."""

    async def prepare(self, event: Event) -> Any:
        """Runs outside the transaction: idempotent calls to other services only."""

    async def apply(self, tx: Tx, event: Event, prepared: Any) -> None:
        """Runs inside the transaction that records the event in the inbox."""


class ApplyOnly:
    """Adapts a plain ``async def fn(tx, event)`` into an EventHandler."""

    # No prepare step: the consumer may apply several of these events in one
    # transaction (see EventConsumer.process).
    prepares = False

    def __init__(self, fn: Callable[[Tx, Event], Awaitable[None]]) -> None:
        self.fn = fn

    async def prepare(self, event: Event) -> None:
        return None

    async def apply(self, tx: Tx, event: Event, prepared: Any) -> None:
        await self.fn(tx, event)


class _Gap(Exception):
    def __init__(self, expected: int) -> None:
        super().__init__(expected)
        self.expected = expected


class _HandlerFailed(Exception):
    """A handler raised inside a run: which event (its index), and the exception."""

    def __init__(self, index: int, error: Exception) -> None:
        super().__init__(index, error)
        self.index = index
        self.error = error


class _Settled(Exception):
    """Leaves the transaction (rolled back) with an outcome that has no effect."""

    def __init__(self, outcome: str) -> None:
        super().__init__(outcome)
        self.outcome = outcome


def _prepares(handler: EventHandler) -> bool:
    return bool(getattr(handler, "prepares", True))


def is_not_yet(exc: BaseException) -> bool:
    """NotYet, or a downstream service that is unreachable right now (503)."""
    return isinstance(exc, NotYet) or (isinstance(exc, ProblemError) and exc.status_code == 503)


def failure_reason(exc: BaseException, deliveries: int) -> str:
    """``Type: message`` first, then the last frames of the traceback."""
    head = f"{type(exc).__name__}: {exc} (after {deliveries} deliveries)"
    frames = "".join(traceback.format_tb(exc.__traceback__, limit=-4))
    reason = f"{head}\nTraceback (most recent call last, last 4 frames):\n{frames}".rstrip()
    if len(reason) > _REASON_LIMIT:
        reason = reason[: _REASON_LIMIT - 3] + "..."
    return reason


class EventConsumer:
    """Reads ``streams`` as one consumer of ``group`` and applies the events that have a
    handler. ``ordered_types`` names the types whose subject must apply in sequence
    order; every other handled type is unordered (inbox dedup only)."""

    def __init__(
        self,
        *,
        db: Database,
        bus: EventBus,
        group: str,
        streams: Sequence[str],
        handlers: Mapping[str, EventHandler],
        ordered_types: Collection[str],
        policy: RetryPolicy | None = None,
        batch: int = 100,
        run_size: int = 32,
        block_ms: int = 200,
        lag_interval: float = 5.0,
        rng: random.Random | None = None,
    ) -> None:
        unknown = set(ordered_types) - set(handlers)
        if unknown:
            raise ValueError(f"ordered types without a handler: {sorted(unknown)}")
        self.db = db
        self.bus = bus
        self.group = group
        self.streams = list(streams)
        self.handlers = dict(handlers)
        self.ordered_types = frozenset(ordered_types)
        self.policy = policy or RetryPolicy()
        self.batch = batch
        self.run_size = max(1, run_size)
        self.block_ms = block_ms
        self.lag_interval = lag_interval
        self.rng = rng or random.Random()
        self.consumer_name = f"{socket.gethostname()}-{os.getpid()}"
        self.tables = inbox_tables(db.metadata)
        # Early ordered events held here until their predecessor applies, per subject
        # key and sequence; the last applied sequence per subject key as seen here.
        self._waiting: dict[str, dict[int, Delivery]] = {}
        self._waiting_count = 0
        self._last_known: dict[str, int] = {}
        # The entries _release is applying from the waiting room: parked before, though
        # it may be their first delivery.
        self._releasing: set[tuple[str, str]] = set()

    def _insert(self, table: Table) -> Any:
        return (sqlite_insert if self.db.sqlite else pg_insert)(table)

    @staticmethod
    def subject_key(event: Event) -> str:
        return f"{event.source}|{event.subject}"

    # -- one attempt ---------------------------------------------------------
    async def handle(self, delivery: Delivery) -> str:
        """One attempt at the delivery, in its own transaction: APPLIED, DUPLICATE,
        STALE or IGNORED. Raises ``_Gap`` when an ordered event has a gap before it, and
        the handler's exception when it fails (nothing is written then)."""
        event = delivery.event
        handler = self.handlers.get(event.type)
        if handler is None:
            return IGNORED
        try:
            await self._apply(delivery, handler, event.type in self.ordered_types)
        except _Settled as settled:
            if self._may_have_parked(delivery):
                await self._forget(delivery)
            return settled.outcome
        return APPLIED

    async def _apply(self, delivery: Delivery, handler: EventHandler, ordered: bool) -> None:
        event = delivery.event
        inbox, applied, attempts = self.tables
        key = self.subject_key(event)
        prepared: Any = None
        if _prepares(handler):
            # A read first, so a duplicate, stale or early event costs no prepare call.
            async with self.db.read() as conn:
                if await conn.scalar(select(inbox.c.event_id).where(inbox.c.event_id == event.id)):
                    raise _Settled(DUPLICATE)
                if ordered:
                    last = await conn.scalar(
                        select(applied.c.sequence).where(applied.c.subject_key == key)
                    )
                    self._check_order(event, last or 0)
            prepared = await handler.prepare(event)
        async with self.db.transaction() as tx:  # a _Settled or _Gap rolls it back
            inserted = await tx.conn.execute(
                self._insert(inbox)
                .values(event_id=event.id, type=event.type)
                .on_conflict_do_nothing()
            )
            if inserted.rowcount == 0:
                raise _Settled(DUPLICATE)
            if ordered:
                last = await tx.conn.scalar(
                    select(applied.c.sequence).where(applied.c.subject_key == key).with_for_update()
                )
                self._check_order(event, last or 0)
            await handler.apply(tx, event, prepared)
            if ordered:
                upsert = self._insert(applied).values(subject_key=key, sequence=event.sequence)
                await tx.conn.execute(
                    upsert.on_conflict_do_update(
                        index_elements=["subject_key"], set_={"sequence": event.sequence}
                    )
                )
            if self._may_have_parked(delivery):
                await tx.conn.execute(delete(attempts).where(attempts.c.event_id == event.id))

    def _may_have_parked(self, delivery: Delivery) -> bool:
        """Whether the entry may have a park count to drop when it settles: a
        redelivery, or a first delivery released from the waiting room."""
        return delivery.delivery_count > 1 or (delivery.stream, delivery.entry_id) in (
            self._releasing
        )

    @staticmethod
    def _check_order(event: Event, last: int) -> None:
        if event.sequence <= last:
            raise _Settled(STALE)
        if event.sequence > last + 1:
            raise _Gap(last + 1)

    # -- what happens to a delivery that did not apply ----------------------------
    async def _parks_of(self, deliveries: Sequence[Delivery]) -> dict[tuple[str, str], int]:
        """How often each bus entry was parked before. A replayed dead letter is a new
        entry, so it starts afresh; a row of another event under the same entry id (a
        log that was reset) counts nothing."""
        attempts = self.tables.attempts
        wanted = {(d.stream, d.entry_id): d.event.id for d in deliveries}
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(
                    attempts.c.stream, attempts.c.entry_id, attempts.c.event_id, attempts.c.parks
                ).where(attempts.c.entry_id.in_({entry for _, entry in wanted}))
            )
            return {
                (row.stream, row.entry_id): int(row.parks)
                for row in rows
                if wanted.get((row.stream, row.entry_id)) == row.event_id
            }

    async def _record_parks(self, parked: Sequence[tuple[Delivery, int]]) -> None:
        attempts = self.tables.attempts
        upsert = self._insert(attempts)
        upsert = upsert.on_conflict_do_update(
            index_elements=["stream", "entry_id"],
            set_={
                "event_id": upsert.excluded.event_id,
                "parks": upsert.excluded.parks,
                "updated_at": func.now(),
            },
        )
        rows = [
            {"stream": d.stream, "entry_id": d.entry_id, "event_id": d.event.id, "parks": n}
            for d, n in parked
        ]
        async with self.db.transaction() as tx:
            await tx.conn.execute(upsert, rows)

    async def _forget(self, delivery: Delivery) -> None:
        attempts = self.tables.attempts
        async with self.db.transaction() as tx:
            await tx.conn.execute(
                delete(attempts).where(
                    attempts.c.stream == delivery.stream,
                    attempts.c.entry_id == delivery.entry_id,
                )
            )

    async def _dead_letter(self, delivery: Delivery, reason: str) -> str:
        event = delivery.event
        log.error(
            "dead-lettering %s %s (entry %s of %s, delivery %d): %s",
            event.type,
            event.id,
            delivery.entry_id,
            delivery.stream,
            delivery.delivery_count,
            reason.splitlines()[0],
        )
        await self.bus.dead_letter(self.group, delivery, reason)
        await self._forget(delivery)  # a replay starts afresh
        self._unwait(delivery)
        return DEAD_LETTERED

    async def park_many(self, parking: Sequence[tuple[Delivery, str, bool]]) -> list[str]:
        """Redeliver later, each up to ``max_parks`` deliveries: ``(delivery, why it
        waits, waiting)``. A gap before an ordered event waits a short delay (its
        predecessor is usually close behind, and the waiting room applies it as soon as
        the predecessor applies here); a handler's NotYet (``waiting``) waits the
        failure backoff (a dependency may be out for a while)."""
        if not parking:
            return []
        before = await self._parks_of([d for d, _, _ in parking])
        outcomes: list[str] = []
        later: list[tuple[Delivery, int, float]] = []
        for delivery, why, waiting in parking:
            parks = before.get((delivery.stream, delivery.entry_id), 0) + 1
            if parks >= self.policy.max_parks:
                reason = f"{why} (after {parks} deliveries)"
                outcomes.append(await self._dead_letter(delivery, reason))
                continue
            delay = (
                self.policy.retry_delay(parks, self.rng)
                if waiting
                else self.policy.park_delay(parks, self.rng)
            )
            later.append((delivery, parks, delay))
            outcomes.append(PARKED)
        if later:
            await self._record_parks([(d, n) for d, n, _ in later])
            for delivery, _, delay in later:
                await self.bus.retry_later(self.group, delivery, delay)
        return outcomes

    async def park(self, delivery: Delivery, why: str, *, waiting: bool = False) -> str:
        return (await self.park_many([(delivery, why, waiting)]))[0]

    async def failed(self, delivery: Delivery, exc: Exception) -> str:
        """The handler raised: retry with backoff, or dead-letter after max_deliveries."""
        event = delivery.event
        if is_not_yet(exc):
            log.info("%s %s cannot apply yet: %s", event.type, event.id, exc)
            return await self.park(
                delivery, f"never ready: {type(exc).__name__}: {exc}", waiting=True
            )
        parks = (await self._parks_of([delivery])).get((delivery.stream, delivery.entry_id), 0)
        failures = max(1, delivery.delivery_count - parks)
        if failures >= self.policy.max_deliveries:
            return await self._dead_letter(delivery, failure_reason(exc, failures))
        delay = self.policy.retry_delay(failures, self.rng)
        log.warning(
            "handler failed for %s %s (failure %d of %d), retrying in %.2fs",
            event.type,
            event.id,
            failures,
            self.policy.max_deliveries,
            delay,
            exc_info=exc,
        )
        await self.bus.retry_later(self.group, delivery, delay)
        return RETRIED

    # -- the waiting room of early ordered events ----------------------------------
    def _learn(self, delivery: Delivery, result: str | _Gap) -> None:
        """Keeps the last applied sequence per ordered subject as seen here (a hint for
        the waiting room; the transaction always checks the database)."""
        event = delivery.event
        if event.type not in self.ordered_types:
            return
        key = self.subject_key(event)
        known = self._last_known.get(key, 0)
        if isinstance(result, _Gap):
            self._last_known[key] = max(known, result.expected - 1)
            return
        if result == APPLIED:
            self._last_known[key] = max(known, event.sequence)
        self._unwait(delivery)

    def _wait(self, delivery: Delivery) -> None:
        if self._waiting_count >= _WAITING_ROOM_LIMIT:
            return  # the bus's redelivery brings it back anyway
        room = self._waiting.setdefault(self.subject_key(delivery.event), {})
        if delivery.event.sequence not in room:
            self._waiting_count += 1
        room[delivery.event.sequence] = delivery

    def _unwait(self, delivery: Delivery) -> None:
        key = self.subject_key(delivery.event)
        room = self._waiting.get(key)
        if room is None:
            return
        waiting = room.get(delivery.event.sequence)
        if waiting is not None and (waiting.stream, waiting.entry_id) == (
            delivery.stream,
            delivery.entry_id,
        ):
            del room[delivery.event.sequence]
            self._waiting_count -= 1
            if not room:
                del self._waiting[key]

    async def _release(self, acks: dict[str, list[str]]) -> dict[tuple[str, str], str]:
        """Applies waiting events whose predecessor has applied, in chains (a run per
        subject). Returns the outcome per bus entry of those that settled."""
        settled: dict[tuple[str, str], str] = {}
        progress = True
        while progress:
            progress = False
            for key in list(self._waiting):
                room = self._waiting.get(key, {})
                last = self._last_known.get(key, 0)
                chain = [room[seq] for seq in sorted(room) if seq <= last]  # stale by now
                following = last + 1
                while following in room and len(chain) < self.run_size:
                    chain.append(room[following])
                    following += 1
                if not chain:
                    continue
                for delivery in chain:
                    self._unwait(delivery)
                self._releasing = {(d.stream, d.entry_id) for d in chain}
                try:
                    results = await self._attempt_run(chain, range(len(chain)), acks)
                finally:
                    self._releasing = set()
                for n, result in results.items():
                    delivery = chain[n]
                    if isinstance(result, _Gap):
                        self._wait(delivery)  # still pending on the bus, with its timer
                        continue
                    settled[(delivery.stream, delivery.entry_id)] = result
                    progress = progress or result == APPLIED
        return settled

    # -- the loop ------------------------------------------------------------------
    async def _attempt(self, delivery: Delivery, acks: dict[str, list[str]]) -> str | _Gap:
        """One attempt and what follows from it; a ``_Gap`` is left to the caller."""
        event = delivery.event
        token = correlation_id.set(event.correlationid)
        started = time.perf_counter()
        result: str | _Gap
        try:
            try:
                result = await self.handle(delivery)
            except _Gap as gap:
                result = gap
            except Exception as exc:
                result = await self.failed(delivery, exc)
            else:
                acks.setdefault(delivery.stream, []).append(delivery.entry_id)
        finally:
            if event.type in self.handlers:
                HANDLER_SECONDS.labels(self.group, event.type).observe(
                    time.perf_counter() - started
                )
            correlation_id.reset(token)
        self._learn(delivery, result)
        if not isinstance(result, _Gap):
            EVENTS_HANDLED.labels(self.group, event.type, result).inc()
        return result

    async def _settle_failure(self, delivery: Delivery, error: Exception, started: float) -> str:
        """A handler's exception raised inside a run: what ``_attempt`` does with it."""
        event = delivery.event
        token = correlation_id.set(event.correlationid)
        try:
            outcome = await self.failed(delivery, error)
        finally:
            correlation_id.reset(token)
        HANDLER_SECONDS.labels(self.group, event.type).observe(time.perf_counter() - started)
        self._learn(delivery, outcome)
        EVENTS_HANDLED.labels(self.group, event.type, outcome).inc()
        return outcome

    async def process(self, deliveries: Sequence[Delivery]) -> list[str]:
        """Handles a batch; returns each delivery's outcome.

        Consecutive events whose handlers have no prepare step are applied in runs of up
        to ``run_size``, one transaction per run (the inbox rows and the applied
        sequences with them); should anything in a run fail, the run is rolled back and
        its events are handled one by one, so the failure is the failing event's alone.

        An ordered event that arrives before its predecessor goes to the waiting room
        (and is parked on the bus, which redelivers it after a delay should this
        process stop): as soon as its predecessor applies here, in this batch or a
        later one, it applies too. Acks go out once per stream at the end."""
        acks: dict[str, list[str]] = {}
        outcomes: dict[int, str] = {}
        early: dict[int, _Gap] = {}

        def note(n: int, result: str | _Gap) -> None:
            if isinstance(result, _Gap):
                early[n] = result
            else:
                outcomes[n] = result

        run: list[int] = []

        async def flush_run() -> None:
            for m, result in (await self._attempt_run(deliveries, run, acks)).items():
                note(m, result)
            run.clear()

        try:
            for n, delivery in enumerate(deliveries):
                handler = self.handlers.get(delivery.event.type)
                if handler is not None and _prepares(handler):
                    await flush_run()
                    note(n, await self._attempt(delivery, acks))
                    continue
                run.append(n)
                if len(run) >= self.run_size:
                    await flush_run()
            await flush_run()
            for n in early:
                self._wait(deliveries[n])
            settled = await self._release(acks)
            for n in list(early):
                delivery = deliveries[n]
                outcome = settled.get((delivery.stream, delivery.entry_id))
                if outcome is not None:
                    outcomes[n] = outcome
                    del early[n]
            parked = await self.park_many(
                [
                    (
                        deliveries[n],
                        f"sequence gap never filled: {deliveries[n].event.source}"
                        f" {deliveries[n].event.subject} is at {gap.expected - 1},"
                        f" this event is {deliveries[n].event.sequence}",
                        False,
                    )
                    for n, gap in early.items()
                ]
            )
            for n, outcome in zip(early, parked, strict=True):
                outcomes[n] = outcome
                EVENTS_HANDLED.labels(self.group, deliveries[n].event.type, outcome).inc()
        finally:
            for stream, entry_ids in acks.items():
                await self.bus.ack(self.group, stream, entry_ids)
        return [outcomes[n] for n in range(len(deliveries))]

    async def _attempt_run(
        self, deliveries: Sequence[Delivery], run: Sequence[int], acks: dict[str, list[str]]
    ) -> dict[int, str | _Gap]:
        """A run of events in one transaction; one by one when the run fails, has a
        single event, or has an event whose handler has a prepare step."""
        if len(run) <= 1 or any(
            _prepares(self.handlers[t])
            for t in {deliveries[n].event.type for n in run}
            if t in self.handlers
        ):
            return {n: await self._attempt(deliveries[n], acks) for n in run}
        started = time.perf_counter()
        try:
            results = await self._apply_run([(n, deliveries[n]) for n in run])
        except _HandlerFailed as failure:
            # Rolled back. The events before the failing one applied: again, as a run;
            # the failing one's exception is its delivery's failure (its handler is not
            # called twice for one delivery); the events after it, as another run.
            at = list(run).index(failure.index)
            settled = dict(await self._attempt_run(deliveries, run[:at], acks))
            settled[failure.index] = await self._settle_failure(
                deliveries[failure.index], failure.error, started
            )
            settled.update(await self._attempt_run(deliveries, run[at + 1 :], acks))
            return settled
        except Exception:
            log.info("a run of %d events failed; handling them one by one", len(run))
            return {n: await self._attempt(deliveries[n], acks) for n in run}
        share = (time.perf_counter() - started) / len(run)
        for n, result in results.items():
            delivery = deliveries[n]
            event_type = delivery.event.type
            if event_type in self.handlers:
                HANDLER_SECONDS.labels(self.group, event_type).observe(share)
            self._learn(delivery, result)
            if not isinstance(result, _Gap):
                acks.setdefault(delivery.stream, []).append(delivery.entry_id)
                EVENTS_HANDLED.labels(self.group, event_type, result).inc()
        return results

    async def _apply_run(self, run: Sequence[tuple[int, Delivery]]) -> dict[int, str | _Gap]:
        inbox, applied, attempts = self.tables
        results: dict[int, str | _Gap] = {}
        handled = [(n, d) for n, d in run if d.event.type in self.handlers]
        for n, delivery in run:
            if delivery.event.type not in self.handlers:
                results[n] = IGNORED
        if not handled:
            return results
        async with self.db.transaction() as tx:
            ids = list({d.event.id for _, d in handled})
            seen = set(
                await tx.conn.scalars(select(inbox.c.event_id).where(inbox.c.event_id.in_(ids)))
            )
            keys = {
                self.subject_key(d.event) for _, d in handled if d.event.type in self.ordered_types
            }
            lasts: dict[str, int] = {}
            if keys:
                rows = await tx.conn.execute(
                    select(applied.c.subject_key, applied.c.sequence)
                    .where(applied.c.subject_key.in_(keys))
                    .with_for_update()
                )
                lasts = {row.subject_key: int(row.sequence) for row in rows}
            fresh: list[dict[str, str]] = []
            moved: set[str] = set()
            forget: list[Delivery] = []
            for n, delivery in handled:
                event = delivery.event
                if event.id in seen:
                    results[n] = DUPLICATE
                    continue
                ordered = event.type in self.ordered_types
                key = self.subject_key(event)
                if ordered:
                    last = lasts.get(key, 0)
                    if event.sequence <= last:
                        results[n] = STALE
                        continue
                    if event.sequence > last + 1:
                        results[n] = _Gap(last + 1)
                        continue
                token = correlation_id.set(event.correlationid)
                try:
                    await self.handlers[event.type].apply(tx, event, None)
                except Exception as exc:
                    raise _HandlerFailed(n, exc) from exc
                finally:
                    correlation_id.reset(token)
                seen.add(event.id)
                fresh.append({"event_id": event.id, "type": event.type})
                if ordered:
                    lasts[key] = event.sequence
                    moved.add(key)
                results[n] = APPLIED
            for n, delivery in handled:
                if self._may_have_parked(delivery) and not isinstance(results[n], _Gap):
                    forget.append(delivery)
            if fresh:
                await tx.conn.execute(insert(inbox), fresh)
            if moved:  # one statement for every subject the run moved
                upsert = self._insert(applied)
                await tx.conn.execute(
                    upsert.on_conflict_do_update(
                        index_elements=["subject_key"], set_={"sequence": upsert.excluded.sequence}
                    ),
                    [{"subject_key": key, "sequence": lasts[key]} for key in sorted(moved)],
                )
            if forget:
                await tx.conn.execute(
                    delete(attempts).where(
                        attempts.c.stream == bindparam("of_stream"),
                        attempts.c.entry_id == bindparam("of_entry"),
                    ),
                    [{"of_stream": d.stream, "of_entry": d.entry_id} for d in forget],
                )
        return results

    async def refresh_lag(self) -> list[GroupLag]:
        """Sets the group's gauges from the bus; returns its rows."""
        rows = [row for row in await self.bus.lag() if row.group == self.group]
        for row in rows:
            EVENTS_PENDING.labels(row.group, row.stream).set(row.pending)
            EVENTS_LAG.labels(row.group, row.stream).set(row.lag)
            EVENTS_OLDEST_PENDING.labels(row.group, row.stream).set(row.oldest_pending_seconds)
        return rows

    async def _watch_lag(self, stop: asyncio.Event) -> None:
        # Soon after the start (the group exists once the loop has read), then every
        # lag_interval.
        interval = min(1.0, self.lag_interval)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)
            if stop.is_set():
                return
            try:
                await self.refresh_lag()
            except Exception:
                log.warning("reading the bus's lag failed", exc_info=True)
            interval = self.lag_interval

    async def run(self, stop: asyncio.Event) -> None:
        watcher = asyncio.create_task(self._watch_lag(stop))
        try:
            while not stop.is_set():
                try:
                    deliveries = await self.bus.read_group(
                        self.group, self.consumer_name, self.streams, self.batch, self.block_ms
                    )
                except Exception:
                    log.exception("reading the bus failed; retrying")
                    await asyncio.sleep(1.0)
                    continue
                if not deliveries:
                    continue
                try:
                    await self.process(deliveries)
                except Exception:
                    # A bus or database outage while settling: whatever was not acked
                    # comes back after the visibility timeout.
                    log.exception("settling a batch failed; its unacked entries come back")
                    await asyncio.sleep(1.0)
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
