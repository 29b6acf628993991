"""The consumer loop (shared/events/inbox/consumer.py) on the real embedded log and a real
service database: retries with backoff, dead letters, replay, ordered and unordered
handlers, the inbox, and the metrics."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select

from shared.db import Database, Tx
from shared.events.bus import Delivery, EventBus
from shared.events.envelope import Event
from shared.events.inbox import (
    ApplyOnly,
    EventConsumer,
    EventHandler,
    NotYet,
    RetryPolicy,
    failure_reason,
    inbox_tables,
    retry_policy,
)
from shared.events.sqlite_log import SqliteEventLog
from shared.problems import ProblemError
from shared.settings import load_settings
from tests.support.events import thing_event
from tests.support.polling import eventually_async

STREAM = "tally.test"
_groups = itertools.count(1)


class RecordingBus:
    """The real log, with the delays the consumer asked for recorded."""

    def __init__(self, inner: SqliteEventLog) -> None:
        self.inner = inner
        self.delays: list[tuple[str, float]] = []  # (event id, delay)

    async def retry_later(self, group: str, delivery: Delivery, delay_seconds: float) -> None:
        self.delays.append((delivery.event.id, delay_seconds))
        await self.inner.retry_later(group, delivery, delay_seconds)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@dataclass
class Service:
    db: Database
    effects: Table
    bus: RecordingBus
    log: SqliteEventLog

    async def applied(self) -> list[tuple[str, int]]:
        """(subject, sequence) of every effect, in the order they were applied."""
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(self.effects.c.subject, self.effects.c.sequence).order_by(self.effects.c.id)
            )
            return [(r.subject, r.sequence) for r in rows]

    async def count(self, table: str) -> int:
        async with self.db.read() as conn:
            return int(
                await conn.scalar(select(func.count()).select_from(self.db.metadata.tables[table]))
                or 0
            )


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[Service]:
    metadata = MetaData()
    effects = Table(
        "effects",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("event_id", String(64), nullable=False),
        Column("subject", String(100), nullable=False),
        Column("sequence", Integer, nullable=False),
    )
    inbox_tables(metadata)
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'service.db'}", metadata)
    await db.create_schema()
    log = SqliteEventLog(tmp_path / "events.db", poll_interval=0.005)
    try:
        yield Service(db, effects, RecordingBus(log), log)
    finally:
        await log.close()
        await db.dispose()


@dataclass
class Flaky:
    """Writes an effect; raises for the event ids in ``poison`` (after writing, so a
    failure must roll the effect back)."""

    effects: Table
    poison: set[str] = field(default_factory=set)
    not_yet: dict[str, int] = field(default_factory=dict)  # event id -> NotYets left
    calls: list[tuple[str, float]] = field(default_factory=list)  # (event id, time)

    async def __call__(self, tx: Tx, event: Event) -> None:
        self.calls.append((event.id, time.monotonic()))
        await tx.conn.execute(
            insert(self.effects).values(
                event_id=event.id, subject=event.subject, sequence=event.sequence
            )
        )
        if self.not_yet.get(event.id, 0) > 0:
            self.not_yet[event.id] -= 1
            raise NotYet("the order is still being placed")
        if event.id in self.poison:
            raise RuntimeError(f"boom on {event.sequence}")


def consumer_for(
    service: Service,
    handler: Callable[[Tx, Event], Awaitable[None]],
    *,
    ordered: bool,
    policy: RetryPolicy | None = None,
    batch: int = 100,
    types: Sequence[str] = ("thing.done",),
    run_order: Callable[[Event], str] | None = None,
) -> EventConsumer:
    handlers: dict[str, EventHandler] = {t: ApplyOnly(handler) for t in types}
    return EventConsumer(
        db=service.db,
        bus=service.bus,  # type: ignore[arg-type]
        group=f"g{next(_groups)}",
        streams=[STREAM],
        handlers=handlers,
        ordered_types=set(types) if ordered else set(),
        policy=policy or RetryPolicy(base_seconds=0.02, cap_seconds=0.5, park_base_seconds=0.01),
        batch=batch,
        block_ms=50,
        lag_interval=0.05,
        run_order=run_order,
    )


@asynccontextmanager
async def running(consumer: EventConsumer) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)


def handled(consumer: EventConsumer, outcome: str, type_: str = "thing.done") -> float:
    value = REGISTRY.get_sample_value(
        "tally_events_handled_total",
        {"group": consumer.group, "type": type_, "outcome": outcome},
    )
    return value or 0.0


async def group_settled(bus: EventBus, group: str) -> bool:
    rows = [row for row in await bus.lag() if row.group == group]
    return bool(rows) and all(row.pending == 0 and row.lag == 0 for row in rows)


# -- failures: backoff, dead letters, replay ------------------------------------------


async def test_a_failing_handler_backs_off_then_dead_letters_with_the_reason(
    service: Service,
) -> None:
    flaky = Flaky(service.effects)
    poison = thing_event("s-1", 1)
    flaky.poison.add(poison.id)
    policy = RetryPolicy(max_deliveries=4, base_seconds=0.05, cap_seconds=1.0)
    consumer = consumer_for(service, flaky, ordered=False, policy=policy)

    await service.log.publish(STREAM, [poison])
    async with running(consumer):
        dead = await eventually_async(lambda: service.log.dead_letters(STREAM))

    assert len(dead) == 1
    letter = dead[0]
    assert letter.event.id == poison.id
    assert letter.group == consumer.group
    assert letter.deliveries == 4
    assert letter.reason.startswith("RuntimeError: boom on 1 (after 4 deliveries)")
    assert "Traceback" in letter.reason
    assert "in __call__" in letter.reason  # the handler's own frame

    # Three retries, each after a longer backoff within its jittered band, then nothing.
    delays = [delay for _, delay in service.bus.delays]
    assert len(delays) == 3
    for n, delay in enumerate(delays, start=1):
        nominal = min(1.0, 0.05 * 2 ** (n - 1))
        assert 0.5 * nominal <= delay <= nominal
    assert delays == sorted(delays)
    assert delays[-1] > delays[0]
    attempts = [at for _, at in flaky.calls]
    assert len(attempts) == 4
    waited = [later - earlier for earlier, later in itertools.pairwise(attempts)]
    assert all(w >= d * 0.9 for w, d in zip(waited, delays, strict=True)), (waited, delays)

    # Never applied, never acked silently: no effect, no inbox row, nothing pending.
    assert await service.applied() == []
    assert await service.count("inbox") == 0
    assert await group_settled(service.log, consumer.group)
    assert handled(consumer, "retried") == 3
    assert handled(consumer, "dead_lettered") == 1
    assert handled(consumer, "applied") == 0


async def test_later_events_are_processed_while_one_is_failing_and_replay_applies_it_once(
    service: Service,
) -> None:
    flaky = Flaky(service.effects)
    events = [thing_event(f"s-{n}", 1) for n in range(5)]
    poison = events[1]
    flaky.poison.add(poison.id)
    policy = RetryPolicy(max_deliveries=3, base_seconds=0.3, cap_seconds=1.0)
    consumer = consumer_for(service, flaky, ordered=False, policy=policy)

    await service.log.publish(STREAM, events)
    async with running(consumer):

        async def others_applied() -> bool:
            return len(await service.applied()) == 4

        assert await eventually_async(others_applied, timeout=5)
        # The poison event is still being retried (not dead yet) while the rest applied.
        assert await service.log.dead_letters(STREAM) == []
        assert {subject for subject, _ in await service.applied()} == {
            "s-0",
            "s-2",
            "s-3",
            "s-4",
        }
        (letter,) = await eventually_async(lambda: service.log.dead_letters(STREAM))
        # Its handler ran once per delivery, though it shared a run with the others.
        assert [event_id for event_id, _ in flaky.calls].count(poison.id) == 3

        # The fix, then the replay: applied exactly once.
        flaky.poison.clear()
        assert await service.log.replay_dead_letter(letter.dead_letter_id)

        async def all_applied() -> bool:
            return len(await service.applied()) == 5

        assert await eventually_async(all_applied)
        # A second replay of the same event (re-published by hand) is a duplicate.
        await service.log.publish(STREAM, [poison])
        await eventually_async(lambda: group_settled(service.log, consumer.group))
        assert await eventually_async(lambda: handled(consumer, "duplicate") >= 1)

    applied = await service.applied()
    assert sorted(applied) == [(f"s-{n}", 1) for n in range(5)]
    assert await service.count("inbox") == 5
    assert await service.log.dead_letters(STREAM) == []


async def test_a_failure_rolls_back_the_effects_written_before_it(service: Service) -> None:
    flaky = Flaky(service.effects)
    poison = thing_event("s-1", 1)
    flaky.poison.add(poison.id)
    consumer = consumer_for(service, flaky, ordered=True)

    await service.log.publish(STREAM, [poison])
    async with running(consumer):
        await eventually_async(lambda: len(flaky.calls) >= 2)
        assert await service.applied() == []
        assert await service.count("inbox") == 0
        assert await service.count("applied_sequences") == 0


async def test_not_yet_waits_without_counting_toward_the_dead_letters(service: Service) -> None:
    flaky = Flaky(service.effects)
    waiting = thing_event("s-1", 1)
    flaky.not_yet[waiting.id] = 4
    policy = RetryPolicy(max_deliveries=2, base_seconds=0.01, cap_seconds=0.05)
    consumer = consumer_for(service, flaky, ordered=False, policy=policy)

    await service.log.publish(STREAM, [waiting])
    async with running(consumer):

        async def applied() -> bool:
            return len(await service.applied()) == 1

        assert await eventually_async(applied)
    assert await service.log.dead_letters(STREAM) == []
    assert handled(consumer, "parked") == 4
    assert handled(consumer, "applied") == 1


async def test_a_failure_after_parks_counts_only_the_failures(service: Service) -> None:
    """The bus counts every delivery; the consumer subtracts the parked ones."""
    flaky = Flaky(service.effects)
    waiting = thing_event("s-1", 1)
    flaky.not_yet[waiting.id] = 3
    flaky.poison.add(waiting.id)
    policy = RetryPolicy(max_deliveries=3, base_seconds=0.01, cap_seconds=0.05)
    consumer = consumer_for(service, flaky, ordered=False, policy=policy)

    await service.log.publish(STREAM, [waiting])
    async with running(consumer):
        (letter,) = await eventually_async(lambda: service.log.dead_letters(STREAM))
    assert letter.deliveries == 6  # 3 parks, then 3 failures
    assert letter.reason.startswith("RuntimeError: boom on 1 (after 3 deliveries)")
    assert handled(consumer, "parked") == 3
    assert handled(consumer, "retried") == 2


async def test_an_unreachable_downstream_is_a_wait_not_a_failure(service: Service) -> None:
    calls = 0

    async def downstream_down_twice(tx: Tx, event_: Event) -> None:
        nonlocal calls
        calls += 1
        if calls <= 2:
            raise ProblemError(503, "downstream-unavailable", "the ERP is not reachable")
        await tx.conn.execute(
            insert(service.effects).values(event_id=event_.id, subject=event_.subject, sequence=1)
        )

    policy = RetryPolicy(max_deliveries=1, base_seconds=0.01, cap_seconds=0.05)
    consumer = consumer_for(service, downstream_down_twice, ordered=False, policy=policy)
    await service.log.publish(STREAM, [thing_event("s-1", 1)])
    async with running(consumer):

        async def applied() -> bool:
            return len(await service.applied()) == 1

        assert await eventually_async(applied)
    assert handled(consumer, "parked") == 2


# -- ordering -------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [1, 100])
async def test_an_ordered_subject_delivered_backwards_and_twice_applies_in_order_once(
    service: Service, batch: int
) -> None:
    flaky = Flaky(service.effects)
    one, two, three = (thing_event("warehouse:WH-1", n) for n in (1, 2, 3))
    other = thing_event("warehouse:WH-2", 1)
    consumer = consumer_for(service, flaky, ordered=True, batch=batch)

    # 3, 2, 1, then 3, 2, 1 again (the same events: a re-publishing relay), and one of
    # another subject, which never waits for this one.
    await service.log.publish(STREAM, [three, two, other, one])
    await service.log.publish(STREAM, [three, two, one])
    async with running(consumer):

        async def done() -> bool:
            return len(await service.applied()) == 4

        assert await eventually_async(done)
        assert await eventually_async(lambda: group_settled(service.log, consumer.group))

    applied = await service.applied()
    assert [a for a in applied if a[0] == "warehouse:WH-1"] == [
        ("warehouse:WH-1", 1),
        ("warehouse:WH-1", 2),
        ("warehouse:WH-1", 3),
    ]
    assert applied.count(("warehouse:WH-2", 1)) == 1
    assert handled(consumer, "applied") == 4
    assert handled(consumer, "duplicate") == 3
    assert handled(consumer, "dead_lettered") == 0
    if batch == 1:  # one at a time: 3 and 2 must wait on the bus for 1
        assert handled(consumer, "parked") >= 2
    assert await service.count("inbox") == 4
    assert await service.count("event_attempts") == 0  # park counts go once applied
    assert await service.log.dead_letters(STREAM) == []


async def test_the_waiting_room_applies_an_early_event_once_its_predecessor_applies(
    service: Service,
) -> None:
    """One delivery per read, and the bus would redeliver a parked event only after
    2.5 s or more: the early events apply as soon as their predecessor has, from the
    consumer's waiting room, then their bus entries are acked."""
    flaky = Flaky(service.effects)
    policy = RetryPolicy(park_base_seconds=5.0, park_cap_seconds=5.0)
    consumer = consumer_for(service, flaky, ordered=True, policy=policy, batch=1)
    four, three, two, one = (thing_event("warehouse:WH-1", n) for n in (4, 3, 2, 1))
    await service.log.publish(STREAM, [four, three, two])
    async with running(consumer):
        assert await eventually_async(lambda: handled(consumer, "parked") == 3)
        started = time.monotonic()
        await service.log.publish(STREAM, [one])

        async def all_applied() -> bool:
            return len(await service.applied()) == 4

        assert await eventually_async(all_applied, timeout=2.0)
        assert time.monotonic() - started < 2.0
        assert await eventually_async(lambda: group_settled(service.log, consumer.group), timeout=2)
    assert [seq for _, seq in await service.applied()] == [1, 2, 3, 4]
    assert handled(consumer, "applied") == 4
    # Released from the waiting room on their first delivery: their park counts go too.
    assert await service.count("event_attempts") == 0


async def test_an_older_sequence_under_another_id_is_stale(service: Service) -> None:
    flaky = Flaky(service.effects)
    consumer = consumer_for(service, flaky, ordered=True)
    await service.log.publish(STREAM, [thing_event("s", 1), thing_event("s", 2)])
    # Another event id with an applied sequence (e.g. the producer rebuilt its event).
    await service.log.publish(STREAM, [thing_event("s", 2, n=99)])
    async with running(consumer):
        assert await eventually_async(lambda: handled(consumer, "stale") == 1)
        assert await eventually_async(lambda: group_settled(service.log, consumer.group))
    assert await service.applied() == [("s", 1), ("s", 2)]


async def test_a_gap_never_filled_is_dead_lettered_after_max_parks(service: Service) -> None:
    flaky = Flaky(service.effects)
    policy = RetryPolicy(max_deliveries=2, max_parks=6, park_base_seconds=0.005)
    consumer = consumer_for(service, flaky, ordered=True, policy=policy)
    lonely = thing_event("warehouse:WH-9", 2)  # 1 never comes
    await service.log.publish(STREAM, [thing_event("warehouse:WH-1", 1), lonely])
    async with running(consumer):
        (letter,) = await eventually_async(lambda: service.log.dead_letters(STREAM))
    assert letter.event.id == lonely.id
    assert letter.reason.startswith("sequence gap never filled")
    assert "warehouse:WH-9 is at 0, this event is 2 (after 6 deliveries)" in letter.reason
    assert letter.deliveries == 6  # parks, not max_deliveries (2), decide
    assert await service.applied() == [("warehouse:WH-1", 1)]
    assert handled(consumer, "parked") == 5


async def test_each_entry_of_an_early_event_counts_its_own_parks(service: Service) -> None:
    """The same early event stored twice (a relay retry): both entries reach the park
    limit and are dead-lettered; neither resets the other's count."""
    flaky = Flaky(service.effects)
    policy = RetryPolicy(max_parks=5, park_base_seconds=0.005, park_cap_seconds=0.02)
    consumer = consumer_for(service, flaky, ordered=True, policy=policy, batch=1)
    lonely = thing_event("warehouse:WH-9", 3)
    await service.log.publish(STREAM, [lonely])
    await service.log.publish(STREAM, [lonely])

    async def both_dead() -> bool:
        return len(await service.log.dead_letters(STREAM)) == 2

    async with running(consumer):
        assert await eventually_async(both_dead)
    letters = await service.log.dead_letters(STREAM)
    assert {x.entry_id for x in letters} == {"1", "2"}
    assert all(x.deliveries == 5 for x in letters)
    assert await service.count("event_attempts") == 0


async def test_a_waiting_subject_applies_once_its_predecessor_is_replayed(
    service: Service,
) -> None:
    """A poison event in an ordered subject holds the events behind it (never applied
    out of order); once fixed and replayed, the whole subject applies in order."""
    flaky = Flaky(service.effects)
    events = [thing_event("warehouse:WH-1", n) for n in (1, 2, 3)]
    flaky.poison.add(events[0].id)
    policy = RetryPolicy(max_deliveries=2, base_seconds=0.01, max_parks=1000)
    consumer = consumer_for(service, flaky, ordered=True, policy=policy)
    await service.log.publish(STREAM, events)
    async with running(consumer):
        (letter,) = await eventually_async(lambda: service.log.dead_letters(STREAM))
        assert await service.applied() == []  # 2 and 3 wait, parked
        flaky.poison.clear()
        assert await service.log.replay_dead_letter(letter.dead_letter_id)

        async def done() -> bool:
            return len(await service.applied()) == 3

        assert await eventually_async(done)
    assert [seq for _, seq in await service.applied()] == [1, 2, 3]


async def test_an_unordered_handler_applies_each_event_once_in_any_order(
    service: Service,
) -> None:
    flaky = Flaky(service.effects)
    consumer = consumer_for(service, flaky, ordered=False)
    events = [thing_event("shipments", n) for n in (3, 2, 1)]
    await service.log.publish(STREAM, events)
    await service.log.publish(STREAM, list(reversed(events)))
    async with running(consumer):
        assert await eventually_async(lambda: group_settled(service.log, consumer.group))

    # As delivered, no waiting, each once; no sequence recorded for unordered types.
    assert await service.applied() == [("shipments", 3), ("shipments", 2), ("shipments", 1)]
    assert await service.count("applied_sequences") == 0
    assert handled(consumer, "duplicate") == 3
    assert handled(consumer, "parked") == 0


@pytest.mark.parametrize("sorted_runs", [True, False])
async def test_a_run_applies_in_the_consumers_run_order_each_keys_events_in_bus_order(
    service: Service, sorted_runs: bool
) -> None:
    """With a ``run_order`` (the row a handler locks first), a run takes those locks in
    one global order: its events apply sorted by the key, each key's events in bus
    order. Without one, a run applies in bus order."""
    flaky = Flaky(service.effects)
    key = (lambda event: event.subject) if sorted_runs else None
    consumer = consumer_for(service, flaky, ordered=False, run_order=key)
    published = [("ORD-B", 1), ("ORD-A", 1), ("ORD-C", 1), ("ORD-B", 2), ("ORD-A", 2)]
    await service.log.publish(STREAM, [thing_event(subject, n) for subject, n in published])
    async with running(consumer):
        assert await eventually_async(lambda: group_settled(service.log, consumer.group))
    expected = sorted(published, key=lambda item: item[0]) if sorted_runs else published
    assert await service.applied() == expected


async def test_types_without_a_handler_are_passed_over(service: Service) -> None:
    """The consumer names the types it handles: the log passes over the others (never
    delivered, nothing pending) and the events after them apply."""
    flaky = Flaky(service.effects)
    consumer = consumer_for(service, flaky, ordered=True)
    await service.log.publish(
        STREAM, [thing_event("s", 5, type_="other.thing"), thing_event("s", 1)]
    )
    async with running(consumer):
        assert await eventually_async(lambda: group_settled(service.log, consumer.group))
    assert handled(consumer, "ignored", type_="other.thing") == 0
    assert await service.applied() == [("s", 1)]


async def test_handlers_with_a_prepare_step_run_alone_between_runs(service: Service) -> None:
    """Events of an ApplyOnly handler apply in runs (one transaction per run); a handler
    with a prepare step (a call to another service) gets its own transaction."""
    flaky = Flaky(service.effects)
    prepared: list[str] = []

    class Invoicing:
        async def prepare(self, event_: Event) -> str:
            prepared.append(event_.id)
            return f"invoice-of-{event_.subject}"

        async def apply(self, tx: Tx, event_: Event, invoice: str) -> None:
            assert invoice == f"invoice-of-{event_.subject}"
            await tx.conn.execute(
                insert(service.effects).values(event_id=event_.id, subject=invoice, sequence=0)
            )

    consumer = EventConsumer(
        db=service.db,
        bus=service.log,
        group=f"g{next(_groups)}",
        streams=[STREAM],
        handlers={"thing.done": ApplyOnly(flaky), "shipment.dispatched": Invoicing()},
        ordered_types={"thing.done"},
        run_size=3,
        block_ms=50,
    )
    things = [thing_event("s", n) for n in range(1, 8)]
    shipments = [thing_event(f"SHP-{n}", 1, type_="shipment.dispatched") for n in range(2)]
    mixed = [*things[:3], shipments[0], *things[3:], shipments[1]]
    await service.log.publish(STREAM, mixed)
    await service.log.publish(STREAM, mixed)  # all of it again
    async with running(consumer):
        assert await eventually_async(lambda: group_settled(service.log, consumer.group))

    applied = await service.applied()
    assert [a for a in applied if a[0] == "s"] == [("s", n) for n in range(1, 8)]
    assert sorted(a[0] for a in applied if a[0] != "s") == ["invoice-of-SHP-0", "invoice-of-SHP-1"]
    assert sorted(prepared) == sorted(e.id for e in shipments)  # duplicates: no prepare
    assert handled(consumer, "applied") == 7
    assert handled(consumer, "applied", "shipment.dispatched") == 1 + 1
    assert (
        handled(consumer, "duplicate") + handled(consumer, "duplicate", "shipment.dispatched") == 9
    )


async def test_handlers_that_prepare_together_get_one_call_per_batch(service: Service) -> None:
    """A handler with ``prepare_many`` (a batch call to another service) is called once
    for the unseen events of a bus batch it takes, the events then applied together in
    one transaction, each with its own value (decision 0059); an exception in the
    answer is that event's failure alone (retried, then applied), and so is an apply
    that raises (the others still apply together); a replayed batch costs no call; a
    lone event prepares alone."""
    calls: list[list[str]] = []
    alone: list[str] = []
    refuse_once = {"SHP-2"}
    fail_apply_once = {"SHP-4"}
    applied_in: dict[str, Tx] = {}

    class Posting:
        async def prepare(self, event_: Event) -> str:
            alone.append(event_.subject)
            return f"posted-{event_.subject}"

        async def prepare_many(self, events: Sequence[Event]) -> list[Any]:
            calls.append([e.subject for e in events])
            answers: list[Any] = []
            for e in events:
                if e.subject in refuse_once:
                    refuse_once.discard(e.subject)
                    answers.append(RuntimeError(f"{e.subject} refused this time"))
                else:
                    answers.append(f"posted-{e.subject}")
            return answers

        async def apply(self, tx: Tx, event_: Event, posted: str) -> None:
            assert posted == f"posted-{event_.subject}"
            await tx.conn.execute(
                insert(service.effects).values(event_id=event_.id, subject=posted, sequence=0)
            )
            if event_.subject in fail_apply_once:
                fail_apply_once.discard(event_.subject)
                raise RuntimeError(f"{event_.subject} failed to apply this time")
            applied_in[event_.subject] = tx

    posting = Posting()
    consumer = EventConsumer(
        db=service.db,
        bus=service.log,
        group=f"g{next(_groups)}",
        streams=[STREAM],
        handlers={"shipment.dispatched": posting, "receipt.posted": posting},
        ordered_types=set(),
        policy=RetryPolicy(base_seconds=0.02, cap_seconds=0.5),
        block_ms=50,
    )
    facts = [thing_event(f"SHP-{n}", 1, type_="shipment.dispatched") for n in range(5)]
    facts.append(thing_event("RCV-1", 1, type_="receipt.posted"))
    await service.log.publish(STREAM, facts)
    async with running(consumer):
        assert await eventually_async(lambda: group_settled(service.log, consumer.group))
        await service.log.publish(STREAM, facts)  # every one again: all duplicates
        assert await eventually_async(lambda: group_settled(service.log, consumer.group))

    applied = sorted(a[0] for a in await service.applied())
    assert applied == sorted(f"posted-{e.subject}" for e in facts)  # each once
    # One call for the batch (both types: one handler); the refused one and the one
    # whose apply failed came back (alone, or together in one later batch).
    assert calls[0] == [e.subject for e in facts]
    again = sorted(alone + [subject for c in calls[1:] for subject in c])
    assert again == ["SHP-2", "SHP-4"]  # nothing prepared for the replayed batch
    # Those ahead of the refused one applied together, in one run's transaction; the
    # run after it failed at SHP-4 and was rolled back: the others in it went again
    # without it, and SHP-4 came back later (with SHP-2, or alone).
    assert applied_in["SHP-0"] is applied_in["SHP-1"]
    assert applied_in["SHP-4"] not in (applied_in["SHP-3"], applied_in["RCV-1"])
    assert handled(consumer, "duplicate", "shipment.dispatched") == 5


def test_ordered_types_must_have_a_handler(service: Service) -> None:
    with pytest.raises(ValueError, match="ordered types without a handler"):
        EventConsumer(
            db=service.db,
            bus=service.log,
            group="g",
            streams=[STREAM],
            handlers={},
            ordered_types={"thing.done"},
        )


# -- policy and metrics ---------------------------------------------------------------


def test_backoff_grows_to_the_cap_with_jitter() -> None:
    policy = RetryPolicy(base_seconds=0.2, cap_seconds=30.0)
    rng = random.Random(1)
    for failures in range(1, 15):
        nominal = min(30.0, 0.2 * 2 ** (failures - 1))
        delays = [policy.retry_delay(failures, rng) for _ in range(50)]
        assert all(0.5 * nominal <= d <= nominal for d in delays)
        assert len(set(delays)) > 1  # jittered
    assert policy.retry_delay(20, rng) <= 30.0


@pytest.mark.parametrize("visibility_timeout", [0.5, 5.0, 30.0, 600.0])
def test_the_gap_budget_outlasts_twice_the_visibility_timeout(visibility_timeout: float) -> None:
    policy = RetryPolicy(max_parks=3).outlasting(visibility_timeout)
    # The shortest wait before the dead letters: every park at the low end of its
    # jitter, each delay capped at the timeout by the bus.
    shortest = sum(
        0.5 * min(policy.park_cap_seconds, policy.park_base_seconds * 2**n, visibility_timeout)
        for n in range(policy.max_parks - 1)
    )
    assert shortest > 2 * visibility_timeout
    assert RetryPolicy(max_parks=10_000).outlasting(visibility_timeout).max_parks == 10_000


def test_a_service_policy_comes_from_its_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TALLY_BUS_VISIBILITY_TIMEOUT", "600")
    monkeypatch.setenv("TALLY_EVENTS_MAX_PARKS", "20")
    monkeypatch.setenv("TALLY_EVENTS_MAX_DELIVERIES", "7")
    settings = load_settings("availability")
    policy = retry_policy(settings)
    assert settings.bus_visibility_timeout == 600.0
    assert policy.max_deliveries == 7
    assert policy.max_parks > 20  # raised: 20 short parks would not outlast 600 s
    assert policy == RetryPolicy(max_deliveries=7, max_parks=20).outlasting(600.0)


def test_a_reason_names_the_exception_and_keeps_it_short() -> None:
    try:
        raise ValueError("x" * 5000)
    except ValueError as exc:
        reason = failure_reason(exc, 5)
    assert reason.startswith("ValueError: xxx")
    assert len(reason) <= 2000


async def test_lag_gauges_follow_the_bus(service: Service) -> None:
    flaky = Flaky(service.effects)
    consumer = consumer_for(service, flaky, ordered=False)
    labels = {"group": consumer.group, "stream": STREAM}
    await service.log.publish(STREAM, [thing_event(f"s-{n}", 1) for n in range(3)])
    # Known to the bus, nothing delivered yet: lag 3.
    await service.log.read_group(consumer.group, "peek", [STREAM], count=0, block_ms=0)
    async with running(consumer):
        assert await eventually_async(lambda: group_settled(service.log, consumer.group))

        async def gauges_caught_up() -> bool:
            return REGISTRY.get_sample_value("tally_events_lag", labels) == 0.0 and (
                REGISTRY.get_sample_value("tally_events_pending", labels) == 0.0
            )

        assert await eventually_async(gauges_caught_up)
    assert REGISTRY.get_sample_value("tally_events_oldest_pending_seconds", labels) == 0.0
    assert (
        REGISTRY.get_sample_value(
            "tally_event_handler_seconds_count", {"group": consumer.group, "type": "thing.done"}
        )
        == 3
    )
