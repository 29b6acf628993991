"""The consumer loop: reads a group's deliveries from the bus, applies them through the
inbox (alone or in runs), holds early ordered events in the waiting room, parks,
retries or dead-letters the rest, acks, and keeps the group's lag gauges."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, cast

from shared.correlation import correlation_id
from shared.db import Database
from shared.events.bus import Delivery, EventBus, GroupLag
from shared.events.envelope import Event
from shared.events.inbox.apply import (
    NOT_PREPARED,
    Applier,
    Gap,
    HandlerFailed,
    RunStart,
    Settled,
    subject_key,
)
from shared.events.inbox.handlers import EventHandler, PreparesTogether, prepares, prepares_together
from shared.events.inbox.outcomes import (
    APPLIED,
    EVENTS_HANDLED,
    HANDLER_SECONDS,
    IGNORED,
    record_lag,
)
from shared.events.inbox.parking import Parking
from shared.events.inbox.policy import RetryPolicy
from shared.events.inbox.tables import inbox_tables
from shared.events.inbox.waiting_room import WaitingRoom

log = logging.getLogger("tally.inbox")

# Acks owed per stream, sent once at the end of a batch.
Acks = dict[str, list[str]]


# A run is one write transaction. On SQLite (one writer per database) with 32 a busy
# service's inbox got one turn of the writer in many and fell 40 s behind on a
# 60,000-line day (stop 35). On PostgreSQL a run holds the row locks of every event in
# it until it commits: runs of 100 made availability's allocations wait behind them
# for seconds (decision 0058).
RUN_SIZE_ONE_WRITER = 100
RUN_SIZE_ROW_LOCKS = 16


def run_size_for(db: Database) -> int:
    """The events an inbox applies per transaction on ``db``'s engine."""
    return RUN_SIZE_ONE_WRITER if db.sqlite else RUN_SIZE_ROW_LOCKS


class EventConsumer:
    """Reads ``streams`` as one consumer of ``group`` and applies the events that have a
    handler. ``ordered_types`` names the types whose subject must apply in sequence
    order; every other handled type is unordered (inbox dedup only). ``inbox`` prefixes
    the names of its inbox tables (see ``inbox_tables``). ``run_order``: see
    ``Applier`` (apply.py)."""

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
        run_size: int | None = None,
        block_ms: int = 200,
        lag_interval: float = 5.0,
        rng: random.Random | None = None,
        inbox: str = "",
        run_order: Callable[[Event], str] | None = None,
        run_start: RunStart | None = None,
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
        self.run_size = max(1, run_size or run_size_for(db))
        self.block_ms = block_ms
        self.lag_interval = lag_interval
        self.rng = rng or random.Random()
        self.consumer_name = f"{socket.gethostname()}-{os.getpid()}"
        self.tables = inbox_tables(db.metadata, inbox)
        self.waiting = WaitingRoom()
        self.applier = Applier(
            db=db,
            tables=self.tables,
            handlers=self.handlers,
            ordered_types=self.ordered_types,
            may_have_parked=self.waiting.may_have_parked,
            run_order=run_order,
            run_start=run_start,
        )
        self.parking = Parking(
            db=db,
            bus=bus,
            group=group,
            tables=self.tables,
            policy=self.policy,
            rng=self.rng,
            waiting=self.waiting,
        )

    @staticmethod
    def subject_key(event: Event) -> str:
        return subject_key(event)

    # -- one attempt ---------------------------------------------------------
    async def handle(self, delivery: Delivery, prepared: Any = NOT_PREPARED) -> str:
        """One attempt at the delivery, in its own transaction: APPLIED, DUPLICATE,
        STALE or IGNORED. Raises ``Gap`` when an ordered event has a gap before it, and
        the handler's exception when it fails (nothing is written then). ``prepared``:
        what ``prepare_many`` made for it, if its handler prepares together."""
        event = delivery.event
        handler = self.handlers.get(event.type)
        if handler is None:
            return IGNORED
        try:
            await self.applier.apply_one(
                delivery, handler, event.type in self.ordered_types, prepared
            )
        except Settled as settled:
            if self.waiting.may_have_parked(delivery):
                await self.parking.forget(delivery)
            return settled.outcome
        return APPLIED

    async def park_many(self, parking: Sequence[tuple[Delivery, str, bool]]) -> list[str]:
        """See ``Parking.park_many``."""
        return await self.parking.park_many(parking)

    async def park(self, delivery: Delivery, why: str, *, waiting: bool = False) -> str:
        return (await self.park_many([(delivery, why, waiting)]))[0]

    async def failed(self, delivery: Delivery, exc: Exception) -> str:
        """The handler raised: retry with backoff, or dead-letter after max_deliveries."""
        return await self.parking.failed(delivery, exc)

    def _learn(self, delivery: Delivery, result: str | Gap) -> None:
        if delivery.event.type in self.ordered_types:
            self.waiting.learn(delivery, result)

    async def _attempt(
        self, delivery: Delivery, acks: Acks, prepared: Any = NOT_PREPARED
    ) -> str | Gap:
        """One attempt and what follows from it; a ``Gap`` is left to the caller."""
        event = delivery.event
        token = correlation_id.set(event.correlationid)
        started = time.perf_counter()
        result: str | Gap
        try:
            try:
                result = await self.handle(delivery, prepared)
            except Gap as gap:
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
        if not isinstance(result, Gap):
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

    # -- a batch -------------------------------------------------------------------
    async def process(self, deliveries: Sequence[Delivery]) -> list[str]:
        """Handles a batch; returns each delivery's outcome.

        Consecutive events whose handlers have no prepare step, or whose handler
        prepared them together (``prepare_many``, decision 0059), are applied in runs of
        up to ``run_size``, one transaction per run (the inbox rows and the applied
        sequences with them); should anything in a run fail, the run is rolled back and
        its events are handled one by one, so the failure is the failing event's alone.

        An ordered event that arrives before its predecessor goes to the waiting room
        (and is parked on the bus, which redelivers it after a delay should this
        process stop): as soon as its predecessor applies here, in this batch or a
        later one, it applies too. Acks go out once per stream at the end."""
        acks: Acks = {}
        outcomes: dict[int, str] = {}
        early: dict[int, Gap] = {}

        def note(n: int, result: str | Gap) -> None:
            if isinstance(result, Gap):
                early[n] = result
            else:
                outcomes[n] = result

        run: list[int] = []

        ahead: dict[int, Any] = {}

        async def flush_run() -> None:
            for m, result in (await self._attempt_run(deliveries, run, acks, ahead)).items():
                note(m, result)
            run.clear()

        try:
            ahead.update(await self._prepare_together(deliveries))
            for n, delivery in enumerate(deliveries):
                handler = self.handlers.get(delivery.event.type)
                if handler is not None and prepares(handler) and not _prepared(ahead, n):
                    await flush_run()
                    note(n, await self._attempt(delivery, acks, ahead.get(n, NOT_PREPARED)))
                    continue
                run.append(n)
                if len(run) >= self.run_size:
                    await flush_run()
            await flush_run()
            outcomes.update(await self._settle_early(deliveries, early, acks))
        finally:
            for stream, entry_ids in acks.items():
                await self.bus.ack(self.group, stream, entry_ids)
        return [outcomes[n] for n in range(len(deliveries))]

    async def _prepare_together(self, deliveries: Sequence[Delivery]) -> dict[int, Any]:
        """What the handlers that prepare together (``PreparesTogether``) made for the
        batch's unordered events they take, by index: one ``prepare_many`` call per
        handler for its events the inbox does not hold yet (a duplicate, and a second
        delivery of an id within the batch, are left to ``apply_one``, which settles or
        prepares them alone). A lone event prepares alone too."""
        taken: dict[int, tuple[PreparesTogether, list[int]]] = {}
        ids: set[str] = set()
        for n, delivery in enumerate(deliveries):
            event = delivery.event
            handler = self.handlers.get(event.type)
            if (
                handler is None
                or event.type in self.ordered_types
                or not prepares_together(handler)
                or event.id in ids
            ):
                continue
            ids.add(event.id)
            together = cast(PreparesTogether, handler)
            taken.setdefault(id(handler), (together, []))[1].append(n)
        ahead: dict[int, Any] = {}
        for handler, indices in taken.values():
            if len(indices) < 2:
                continue
            fresh = {
                e.id for e in await self.applier.unseen([deliveries[n].event for n in indices])
            }
            wanted = [n for n in indices if deliveries[n].event.id in fresh]
            if len(wanted) < 2:
                continue
            try:
                prepared = await handler.prepare_many([deliveries[n].event for n in wanted])
                if len(prepared) != len(wanted):
                    raise ValueError(
                        f"prepare_many answered {len(prepared)} values for {len(wanted)} events"
                    )
            except Exception as exc:  # every one of them failed as this
                prepared = [exc] * len(wanted)
            ahead.update(zip(wanted, prepared, strict=True))
        return ahead

    async def _settle_early(
        self, deliveries: Sequence[Delivery], early: Mapping[int, Gap], acks: Acks
    ) -> dict[int, str]:
        """The batch's early events go to the waiting room, which then applies what it
        can; those still early are parked. Returns their outcomes by index."""
        for n in early:
            self.waiting.wait(deliveries[n])
        settled = await self._release(acks)
        outcomes: dict[int, str] = {}
        still_early: dict[int, Gap] = {}
        for n, gap in early.items():
            delivery = deliveries[n]
            outcome = settled.get((delivery.stream, delivery.entry_id))
            if outcome is not None:
                outcomes[n] = outcome
            else:
                still_early[n] = gap
        parked = await self.park_many(
            [
                (
                    deliveries[n],
                    f"sequence gap never filled: {deliveries[n].event.source}"
                    f" {deliveries[n].event.subject} is at {gap.expected - 1},"
                    f" this event is {deliveries[n].event.sequence}",
                    False,
                )
                for n, gap in still_early.items()
            ]
        )
        for n, outcome in zip(still_early, parked, strict=True):
            outcomes[n] = outcome
            EVENTS_HANDLED.labels(self.group, deliveries[n].event.type, outcome).inc()
        return outcomes

    async def _release(self, acks: Acks) -> dict[tuple[str, str], str]:
        """Applies waiting events whose predecessor has applied, in chains (a run per
        subject). Returns the outcome per bus entry of those that settled."""
        settled: dict[tuple[str, str], str] = {}
        progress = True
        while progress:
            progress = False
            for chain in self.waiting.chains(self.run_size):
                with self.waiting.releasing(chain):
                    results = await self._attempt_run(chain, range(len(chain)), acks)
                for n, result in results.items():
                    delivery = chain[n]
                    if isinstance(result, Gap):
                        self.waiting.wait(delivery)  # still pending on the bus, with its timer
                        continue
                    settled[(delivery.stream, delivery.entry_id)] = result
                    progress = progress or result == APPLIED
        return settled

    async def _attempt_run(
        self,
        deliveries: Sequence[Delivery],
        run: Sequence[int],
        acks: Acks,
        prepared: Mapping[int, Any] | None = None,
    ) -> dict[int, str | Gap]:
        """A run of events in one transaction; one by one when the run fails, has a
        single event, or has an event whose handler has a prepare step and that was not
        prepared together (``prepared``: by index)."""
        made = prepared or {}
        if len(run) <= 1 or any(
            prepares(self.handlers[deliveries[n].event.type]) and not _prepared(made, n)
            for n in run
            if deliveries[n].event.type in self.handlers
        ):
            return {
                n: await self._attempt(deliveries[n], acks, made.get(n, NOT_PREPARED)) for n in run
            }
        started = time.perf_counter()
        try:
            results = await self.applier.apply_run(
                [(n, deliveries[n]) for n in run], {n: made[n] for n in run if n in made}
            )
        except HandlerFailed as failure:
            # Rolled back. The events before the failing one applied: again, as a run;
            # the failing one's exception is its delivery's failure (its handler is not
            # called twice for one delivery); the events after it, as another run.
            at = list(run).index(failure.index)
            settled = dict(await self._attempt_run(deliveries, run[:at], acks, made))
            settled[failure.index] = await self._settle_failure(
                deliveries[failure.index], failure.error, started
            )
            settled.update(await self._attempt_run(deliveries, run[at + 1 :], acks, made))
            return settled
        except Exception:
            log.info("a run of %d events failed; handling them one by one", len(run))
            return {
                n: await self._attempt(deliveries[n], acks, made.get(n, NOT_PREPARED)) for n in run
            }
        share = (time.perf_counter() - started) / len(run)
        for n, result in results.items():
            delivery = deliveries[n]
            event_type = delivery.event.type
            if event_type in self.handlers:
                HANDLER_SECONDS.labels(self.group, event_type).observe(share)
            self._learn(delivery, result)
            if not isinstance(result, Gap):
                acks.setdefault(delivery.stream, []).append(delivery.entry_id)
                EVENTS_HANDLED.labels(self.group, event_type, result).inc()
        return results

    # -- the loop ------------------------------------------------------------------
    async def refresh_lag(self) -> list[GroupLag]:
        """Sets the group's gauges from the bus; returns its rows."""
        rows = [row for row in await self.bus.lag() if row.group == self.group]
        record_lag(rows)
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
                        self.group,
                        self.consumer_name,
                        self.streams,
                        self.batch,
                        self.block_ms,
                        types=self.handlers.keys(),
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


def _prepared(ahead: Mapping[int, Any], n: int) -> bool:
    """Whether ``prepare_many`` made a value for event ``n`` (not an exception)."""
    return n in ahead and not isinstance(ahead[n], Exception)
