"""One conformance suite for both bus engines, on real servers: the embedded SQLite log
(a file in tmp) and Redis Streams (the session's redis-server, flushed per test)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from shared.events.bus import Delivery, EventBus, GroupLag, open_bus
from shared.events.envelope import Event, encode_event
from shared.events.redis_streams import RedisStreamsBus
from shared.events.sqlite_log import SqliteEventLog
from tests.support.events import thing_event

VT = 0.3  # the visibility timeout of most tests, seconds


def _events(count: int, subject: str = "s") -> list[Event]:
    return [
        thing_event(subject, i + 1, i, type_="test.happened", source="test") for i in range(count)
    ]


class Engine:
    """Makes buses of one engine on one store (several buses: several processes)."""

    def __init__(self, name: str, target: str) -> None:
        self.name = name
        self.target = target
        self._buses: list[EventBus] = []

    def bus(self, *, visibility_timeout: float = VT, **options: Any) -> EventBus:
        bus: EventBus
        if self.name == "sqlite":
            bus = SqliteEventLog(
                self.target, visibility_timeout=visibility_timeout, poll_interval=0.005, **options
            )
        else:
            bus = RedisStreamsBus(self.target, visibility_timeout=visibility_timeout, **options)
        self._buses.append(bus)
        return bus

    async def close(self) -> None:
        for bus in self._buses:
            with contextlib.suppress(RuntimeError):  # closed by the test
                await bus.close()


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Engine]:
    if request.param == "sqlite":
        made = Engine("sqlite", str(tmp_path / "events.db"))
    else:
        url: str = request.getfixturevalue("redis_url")
        client = Redis.from_url(url)
        await client.flushdb()
        await client.aclose()
        made = Engine("redis", url)
    yield made
    await made.close()


@pytest.fixture
def bus(engine: Engine) -> EventBus:
    return engine.bus()


async def _drain(
    bus: EventBus, group: str, consumer: str, streams: list[str], *, count: int = 100
) -> list[Delivery]:
    got: list[Delivery] = []
    while batch := await bus.read_group(group, consumer, streams, count=count, block_ms=50):
        got += batch
    return got


async def _ack_all(bus: EventBus, group: str, deliveries: list[Delivery]) -> None:
    for d in deliveries:
        await bus.ack(group, d.stream, [d.entry_id])


def _lag_of(lags: list[GroupLag], group: str, stream: str) -> GroupLag:
    (found,) = [lag for lag in lags if lag.group == group and lag.stream == stream]
    return found


# -- delivery ------------------------------------------------------------------


async def test_a_group_receives_every_entry_in_order(bus: EventBus) -> None:
    events = _events(20)
    await bus.publish("orders", events[:10])
    await bus.publish("orders", events[10:])
    got = await bus.read_group("g", "c1", ["orders"], count=100, block_ms=100)
    assert [d.event.id for d in got] == [e.id for e in events]
    assert [d.event for d in got] == events
    assert all(d.delivery_count == 1 and d.stream == "orders" for d in got)
    assert len({d.entry_id for d in got}) == 20


async def test_a_group_is_given_only_the_types_it_handles_and_passes_over_the_rest(
    bus: EventBus,
) -> None:
    """A consumer names the types it handles: the others never reach it, are not left
    pending, and its lag counts them as done, across batches of passed-over entries."""
    wanted = [thing_event("s", n, n, type_="test.wanted", source="test") for n in range(1, 4)]
    other = [thing_event("s", n, n, type_="test.other", source="test") for n in range(1, 13)]
    # Whole batches (count 5) of entries to pass over before, between and after.
    await bus.publish("orders", [*other[:6], wanted[0], *other[6:11], wanted[1], wanted[2]])
    await bus.publish("orders", other[11:])
    got: list[Delivery] = []
    while batch := await bus.read_group(
        "g", "c1", ["orders"], count=5, block_ms=50, types={"test.wanted"}
    ):
        got += batch
    assert [d.event.id for d in got] == [e.id for e in wanted]
    await _ack_all(bus, "g", got)
    lag = _lag_of(await bus.lag(), "g", "orders")
    assert (lag.pending, lag.lag) == (0, 0)
    # Another group, with no types named, is given every entry.
    assert len(await _drain(bus, "all", "c1", ["orders"])) == 15


async def test_small_batches_keep_the_order_and_count_bounds_each_batch(bus: EventBus) -> None:
    events = _events(10)
    await bus.publish("orders", events)
    batches = []
    while batch := await bus.read_group("g", "c1", ["orders"], count=3, block_ms=50):
        batches.append(batch)
        await bus.ack("g", "orders", [d.entry_id for d in batch])
    assert [len(b) for b in batches] == [3, 3, 3, 1]
    assert [d.event.id for b in batches for d in b] == [e.id for e in events]


async def test_one_read_covers_several_streams(bus: EventBus) -> None:
    orders, shipments = _events(3, "o"), _events(2, "s")
    await bus.publish("orders", orders)
    await bus.publish("shipments", shipments)
    got = await _drain(bus, "g", "c1", ["orders", "shipments"])
    assert [d.event.id for d in got if d.stream == "orders"] == [e.id for e in orders]
    assert [d.event.id for d in got if d.stream == "shipments"] == [e.id for e in shipments]


async def test_a_blocked_read_wakes_up_on_publish(engine: Engine) -> None:
    consumer, producer = engine.bus(), engine.bus()
    assert await consumer.read_group("g", "c1", ["orders"], count=10, block_ms=0) == []
    (event,) = _events(1)

    async def publish_soon() -> None:
        await asyncio.sleep(0.1)
        await producer.publish("orders", [event])

    started = time.monotonic()
    publishing = asyncio.create_task(publish_soon())
    got = await consumer.read_group("g", "c1", ["orders"], count=10, block_ms=3000)
    await publishing
    assert [d.event.id for d in got] == [event.id]
    assert time.monotonic() - started < 1.5


async def test_a_read_with_nothing_returns_after_block_ms(bus: EventBus) -> None:
    started = time.monotonic()
    assert await bus.read_group("g", "c1", ["orders"], count=10, block_ms=200) == []
    assert 0.15 <= time.monotonic() - started < 2.0


async def test_an_event_published_twice_is_stored_twice(bus: EventBus) -> None:
    # A relay that crashed between publish and mark publishes again; the bus keeps
    # both and the consumer's inbox deduplicates by event id.
    events = _events(3)
    await bus.publish("orders", events)
    await bus.publish("orders", events)
    stored = await bus.read_all("orders")
    assert [e.id for _, _, e in stored] == [e.id for e in events] * 2
    got = await _drain(bus, "g", "c1", ["orders"])
    assert len(got) == 6


async def test_a_group_that_starts_late_still_sees_history(bus: EventBus) -> None:
    events = _events(4)
    await bus.publish("orders", events)
    await _ack_all(bus, "early", await _drain(bus, "early", "c", ["orders"]))
    late = await _drain(bus, "late", "c", ["orders"])
    assert [d.event.id for d in late] == [e.id for e in events]


async def test_groups_are_independent(bus: EventBus) -> None:
    await bus.publish("orders", _events(5))
    billing = await bus.read_group("billing", "c", ["orders"], count=10, block_ms=50)
    await _ack_all(bus, "billing", billing)
    availability = await bus.read_group("availability", "c", ["orders"], count=10, block_ms=50)
    assert len(billing) == len(availability) == 5
    assert [d.event.id for d in billing] == [d.event.id for d in availability]
    assert await bus.read_group("billing", "c", ["orders"], count=10, block_ms=50) == []


# -- at-least-once ---------------------------------------------------------------


async def test_an_unacked_entry_comes_back_after_the_visibility_timeout(bus: EventBus) -> None:
    await bus.publish("orders", _events(2))
    first = await bus.read_group("g", "c1", ["orders"], count=10, block_ms=50)
    await bus.ack("g", "orders", [first[0].entry_id])
    # Not before the timeout ...
    assert await bus.read_group("g", "c2", ["orders"], count=10, block_ms=50) == []
    await asyncio.sleep(VT + 0.05)
    # ... then once, with its delivery count raised.
    again = await bus.read_group("g", "c2", ["orders"], count=10, block_ms=500)
    assert [d.entry_id for d in again] == [first[1].entry_id]
    assert again[0].event == first[1].event
    assert again[0].delivery_count == 2
    await bus.ack("g", "orders", [again[0].entry_id])
    await asyncio.sleep(VT + 0.05)
    assert await bus.read_group("g", "c2", ["orders"], count=10, block_ms=50) == []


async def test_a_dead_consumers_entries_are_taken_by_another(engine: Engine) -> None:
    producer, dying, survivor = engine.bus(), engine.bus(), engine.bus()
    events = _events(5)
    await producer.publish("orders", events)
    taken = await dying.read_group("g", "dying", ["orders"], count=10, block_ms=100)
    assert len(taken) == 5
    await dying.close()  # dies without acking

    started = time.monotonic()
    rescued = await _drain(survivor, "g", "survivor", ["orders"])
    while not rescued and time.monotonic() - started < 3:
        rescued = await survivor.read_group("g", "survivor", ["orders"], count=10, block_ms=500)
    assert [d.event.id for d in rescued] == [e.id for e in events]
    assert [d.entry_id for d in rescued] == [d.entry_id for d in taken]
    assert all(d.delivery_count == 2 for d in rescued)
    assert time.monotonic() - started >= VT - 0.05
    await _ack_all(survivor, "g", rescued)
    await asyncio.sleep(VT + 0.05)
    assert await survivor.read_group("g", "survivor", ["orders"], count=10, block_ms=50) == []


async def test_two_consumers_of_one_group_share_500_entries_without_overlap(
    engine: Engine,
) -> None:
    producer = engine.bus(visibility_timeout=30)
    a, b = engine.bus(visibility_timeout=30), engine.bus(visibility_timeout=30)
    events = _events(500)
    for start in range(0, 500, 100):
        await producer.publish("orders", events[start : start + 100])
    order = {e.id: i for i, e in enumerate(events)}

    async def drain(bus: EventBus, name: str) -> list[str]:
        seen: list[str] = []
        while batch := await bus.read_group("g", name, ["orders"], count=7, block_ms=100):
            seen += [d.event.id for d in batch]
            await bus.ack("g", "orders", [d.entry_id for d in batch])
        return seen

    got_a, got_b = await asyncio.gather(drain(a, "a"), drain(b, "b"))
    assert not set(got_a) & set(got_b)
    assert len(got_a) + len(got_b) == 500
    assert set(got_a) | set(got_b) == set(order)
    assert got_a and got_b  # both did some of the work
    # Each consumer saw its share in stream order.
    assert [order[i] for i in got_a] == sorted(order[i] for i in got_a)
    assert [order[i] for i in got_b] == sorted(order[i] for i in got_b)
    lag = _lag_of(await producer.lag(), "g", "orders")
    assert (lag.pending, lag.lag) == (0, 0)


# -- retries, dead letters, replay ----------------------------------------------


async def test_retry_later_redelivers_after_the_delay_and_not_before(engine: Engine) -> None:
    bus = engine.bus(visibility_timeout=3.0)
    events = _events(2)
    await bus.publish("orders", events)
    (first,) = await bus.read_group("g", "c1", ["orders"], count=1, block_ms=50)
    await bus.retry_later("g", first, 0.6)
    retried_at = time.monotonic()
    # The entry behind it is not held up.
    (second,) = await bus.read_group("g", "c1", ["orders"], count=10, block_ms=50)
    assert second.event.id == events[1].id
    await bus.ack("g", "orders", [second.entry_id])
    assert await bus.read_group("g", "c1", ["orders"], count=10, block_ms=300) == []
    again: list[Delivery] = []
    while not again and time.monotonic() - retried_at < 2.5:
        again = await bus.read_group("g", "c2", ["orders"], count=10, block_ms=200)
    waited = time.monotonic() - retried_at
    assert [d.event.id for d in again] == [events[0].id]
    assert again[0].entry_id == first.entry_id
    assert again[0].delivery_count == 2
    assert 0.55 <= waited < 2.0  # after the delay, well before the visibility timeout


async def test_retry_later_with_no_delay_redelivers_at_once(bus: EventBus) -> None:
    await bus.publish("orders", _events(1))
    counts = []
    for _ in range(3):
        (d,) = await bus.read_group("g", "c1", ["orders"], count=1, block_ms=200)
        counts.append(d.delivery_count)
        await bus.retry_later("g", d, 0)
    assert counts == [1, 2, 3]


async def test_dead_letter_after_n_failed_deliveries(bus: EventBus) -> None:
    events = _events(3)
    await bus.publish("orders", events)
    max_deliveries = 3
    poison: Delivery | None = None
    for _ in range(max_deliveries):  # a handler that fails every time
        (poison,) = await bus.read_group("g", "c1", ["orders"], count=1, block_ms=500)
        assert poison.event.id == events[0].id
        if poison.delivery_count < max_deliveries:
            await bus.retry_later("g", poison, 0)
    assert poison is not None and poison.delivery_count == max_deliveries
    before = datetime.now(UTC)
    await bus.dead_letter("g", poison, "ValueError: poison")

    (letter,) = await bus.dead_letters("orders")
    assert letter.stream == "orders"
    assert letter.group == "g"
    assert letter.entry_id == poison.entry_id
    assert letter.event == events[0]
    assert letter.deliveries == max_deliveries
    assert letter.reason == "ValueError: poison"
    assert abs((letter.dead_at - before).total_seconds()) < 5
    assert [d.dead_letter_id for d in await bus.dead_letters()] == [letter.dead_letter_id]
    assert await bus.dead_letters("shipments") == []

    # Later entries are still delivered; the dead one no longer is, nor is it pending.
    later = await _drain(bus, "g", "c1", ["orders"])
    assert [d.event.id for d in later] == [e.id for e in events[1:]]
    await _ack_all(bus, "g", later)
    await asyncio.sleep(VT + 0.05)
    assert await bus.read_group("g", "c1", ["orders"], count=10, block_ms=50) == []
    assert _lag_of(await bus.lag(), "g", "orders").pending == 0

    # Dead-lettering an entry that is no longer pending does nothing.
    await bus.dead_letter("g", poison, "again")
    assert len(await bus.dead_letters()) == 1


async def test_replay_republishes_a_dead_letter_once(bus: EventBus) -> None:
    events = _events(2)
    await bus.publish("orders", events)
    (poison,) = await bus.read_group("g", "c1", ["orders"], count=1, block_ms=100)
    await bus.dead_letter("g", poison, "KeyError: 'sku'")
    await _ack_all(bus, "g", await _drain(bus, "g", "c1", ["orders"]))
    (letter,) = await bus.dead_letters("orders")

    assert await bus.replay_dead_letter(letter.dead_letter_id) is True
    assert await bus.dead_letters() == []
    (replayed,) = await bus.read_group("g", "c1", ["orders"], count=10, block_ms=500)
    assert replayed.event == poison.event  # same event id: the inbox applies it once
    assert replayed.entry_id != poison.entry_id  # a new entry
    assert replayed.delivery_count == 1
    await bus.ack("g", "orders", [replayed.entry_id])
    stored = [e.id for _, _, e in await bus.read_all("orders")]
    assert stored == [events[0].id, events[1].id, events[0].id]

    assert await bus.replay_dead_letter(letter.dead_letter_id) is False
    assert await bus.replay_dead_letter("no-such-dead-letter") is False
    assert await bus.read_group("g", "c1", ["orders"], count=10, block_ms=50) == []


async def test_dead_letters_are_listed_oldest_first_up_to_the_limit(bus: EventBus) -> None:
    await bus.publish("orders", _events(3, "o"))
    await bus.publish("shipments", _events(2, "s"))
    got = await _drain(bus, "g", "c1", ["orders", "shipments"])
    for i, d in enumerate(got):
        await bus.dead_letter("g", d, f"failure {i}")
    letters = await bus.dead_letters()
    assert sorted(d.reason for d in letters) == [f"failure {i}" for i in range(5)]
    assert [d.reason for d in await bus.dead_letters("orders")] == [
        f"failure {i}" for i, d in enumerate(got) if d.stream == "orders"
    ]
    assert len(await bus.dead_letters(limit=2)) == 2
    assert len({d.dead_letter_id for d in letters}) == 5


# -- operating -------------------------------------------------------------------


async def test_read_all_pages_in_order(bus: EventBus) -> None:
    orders, shipments = _events(25, "o"), _events(5, "s")
    await bus.publish("orders", orders)
    await bus.publish("shipments", shipments)

    pages: list[list[tuple[str, str, Event]]] = []
    after: str | None = None
    while page := await bus.read_all("orders", after, 10):
        pages.append(page)
        after = page[-1][0]
    assert [len(p) for p in pages] == [10, 10, 5]
    assert [e.id for p in pages for _, _, e in p] == [e.id for e in orders]
    assert {s for p in pages for _, s, _ in p} == {"orders"}

    everything: list[tuple[str, str, Event]] = []
    after = None
    while page := await bus.read_all(None, after, 7):
        everything += page
        after = page[-1][0]
    assert len(everything) == 30
    assert [e.id for _, s, e in everything if s == "orders"] == [e.id for e in orders]
    assert [e.id for _, s, e in everything if s == "shipments"] == [e.id for e in shipments]
    assert await bus.read_all("nothing-here") == []
    with pytest.raises(ValueError):
        await bus.read_all("orders", "not-an-id")


async def test_lag_counts_pending_and_undelivered_entries(bus: EventBus) -> None:
    await bus.publish("orders", _events(10))
    assert await bus.lag() == []
    first = await bus.read_group("g", "c1", ["orders"], count=4, block_ms=50)
    await _ack_all(bus, "h", await bus.read_group("h", "c1", ["orders"], count=1, block_ms=50))
    await asyncio.sleep(0.1)
    lags = await bus.lag()
    assert [(lag.group, lag.stream) for lag in lags] == [("g", "orders"), ("h", "orders")]
    g = _lag_of(lags, "g", "orders")
    assert (g.pending, g.lag) == (4, 6)
    assert 0.05 <= g.oldest_pending_seconds < 10
    h = _lag_of(lags, "h", "orders")
    assert (h.pending, h.lag, h.oldest_pending_seconds) == (0, 9, 0.0)

    await _ack_all(bus, "g", first[:2])
    g = _lag_of(await bus.lag(), "g", "orders")
    assert (g.pending, g.lag) == (2, 6)

    rest = await _drain(bus, "g", "c1", ["orders"])
    assert len(rest) == 6
    g = _lag_of(await bus.lag(), "g", "orders")
    assert (g.pending, g.lag) == (8, 0)
    await _ack_all(bus, "g", first[2:] + rest)
    g = _lag_of(await bus.lag(), "g", "orders")
    assert (g.pending, g.lag, g.oldest_pending_seconds) == (0, 0, 0.0)

    await bus.publish("orders", _events(3))
    g = _lag_of(await bus.lag(), "g", "orders")
    assert (g.pending, g.lag) == (0, 3)


async def test_ping_and_close(engine: Engine) -> None:
    bus = engine.bus()
    await bus.ping()
    await bus.close()


def test_open_bus_picks_the_engine(tmp_path: Path) -> None:
    assert isinstance(open_bus(f"sqlite:///{tmp_path / 'events.db'}"), SqliteEventLog)
    assert isinstance(open_bus("redis://127.0.0.1:1/0", max_len=10), RedisStreamsBus)
    with pytest.raises(ValueError, match="unsupported"):
        open_bus("kafka://nowhere")


# -- bounded streams ---------------------------------------------------------------


async def _length(bus: EventBus, stream: str) -> int:
    return len(await bus.read_all(stream, limit=10_000))


async def _trim(bus: EventBus, stream: str) -> int:
    assert isinstance(bus, SqliteEventLog | RedisStreamsBus)
    return await bus.trim(stream)


async def test_trimming_never_drops_an_unacknowledged_entry(engine: Engine) -> None:
    bus = engine.bus(max_len=10, trim_every=10**9)
    first = _events(5)
    await bus.publish("orders", first)
    got = await bus.read_group("g", "c1", ["orders"], count=10, block_ms=50)
    await bus.ack("g", "orders", [d.entry_id for d in got if d.event.id != first[2].id])
    await bus.publish("orders", _events(100))
    # Only the two entries before the pending one may go; g has not seen the 100.
    assert await _trim(bus, "orders") == 2
    assert await _length(bus, "orders") == 103
    await asyncio.sleep(VT + 0.05)
    rest = await _drain(bus, "g", "c1", ["orders"])
    assert rest[0].event.id == first[2].id
    assert rest[0].delivery_count == 2
    assert len(rest) == 101
    # Still unacked: nothing more can go.
    assert await _trim(bus, "orders") == 0
    await _ack_all(bus, "g", rest)
    assert await _trim(bus, "orders") == 93
    assert await _length(bus, "orders") == 10

    # A group that lags holds the entries it has not been delivered yet.
    await bus.publish("orders", _events(20))
    await _ack_all(bus, "g", await _drain(bus, "g", "c1", ["orders"]))
    late = await bus.read_group("late", "c1", ["orders"], count=25, block_ms=50)
    await _ack_all(bus, "late", late)
    assert await _trim(bus, "orders") == 20
    assert await _length(bus, "orders") == 10
    assert len(await _drain(bus, "late", "c1", ["orders"])) == 5


async def test_trimming_keeps_the_newest_max_len_entries(engine: Engine) -> None:
    bus = engine.bus(max_len=10, trim_every=10**9)
    events = _events(30)
    await bus.publish("orders", events)  # no group yet: nothing holds entries back
    assert await _trim(bus, "orders") == 20
    assert [e.id for _, _, e in await bus.read_all("orders")] == [e.id for e in events[20:]]
    assert await _trim(bus, "orders") == 0
    assert await _trim(bus, "no-such-stream") == 0


async def test_publishing_trims_every_so_many_appends(engine: Engine) -> None:
    bus = engine.bus(max_len=10, trim_every=50)
    for _ in range(6):
        await bus.publish("orders", _events(20))
    # Trimmed to 10 after the 60th append and again after the 120th.
    assert await _length(bus, "orders") == 10
    await bus.publish("orders", _events(20))
    assert await _length(bus, "orders") == 30


async def test_dead_letters_are_bounded_too(engine: Engine) -> None:
    bus = engine.bus(max_len=3)
    events = _events(5)
    await bus.publish("orders", events)
    for delivery in await bus.read_group("g", "c1", ["orders"], count=10, block_ms=50):
        await bus.dead_letter("g", delivery, f"poison {delivery.event.sequence}")
    letters = await bus.dead_letters("orders")
    assert [x.reason for x in letters] == ["poison 3", "poison 4", "poison 5"]
    lag = _lag_of(await bus.lag(), "g", "orders")
    assert (lag.pending, lag.lag) == (0, 0)


def test_the_bus_settings_reach_both_engines(tmp_path: Path) -> None:
    for url in (f"sqlite:///{tmp_path / 'events.db'}", "redis://127.0.0.1:1/0"):
        bus = open_bus(url, visibility_timeout=2.5, max_len=40)
        assert (bus.visibility_timeout, bus.max_len) == (2.5, 40)
        assert isinstance(bus, SqliteEventLog | RedisStreamsBus)
        assert bus.trim_every == 40  # at most about twice max_len between two trims
        if isinstance(bus, SqliteEventLog):
            asyncio.run(bus.close())


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.mark.redis
async def test_idle_consumers_without_pending_entries_leave_the_group(
    redis_client: Redis, redis_url: str
) -> None:
    bus = RedisStreamsBus(redis_url, visibility_timeout=VT)
    try:
        await bus.publish("orders", _events(3))
        (done,) = await bus.read_group("g", "gone", ["orders"], count=1, block_ms=50)
        await bus.ack("g", "orders", [done.entry_id])
        (held,) = await bus.read_group("g", "crashed", ["orders"], count=1, block_ms=50)
        (also_done,) = await bus.read_group("g", "alive", ["orders"], count=1, block_ms=50)
        await bus.ack("g", "orders", [also_done.entry_id])

        async def consumers() -> set[str]:
            infos = await redis_client.xinfo_consumers("orders", "g")
            return {info["name"].decode() for info in infos}

        assert await consumers() == {"gone", "crashed", "alive"}
        assert await bus.forget_idle_consumers("orders", idle_seconds=60) == 0
        await asyncio.sleep(0.05)
        # Nothing pending: named again by the next read. "crashed" keeps its entry.
        assert await bus.forget_idle_consumers("orders", idle_seconds=0.01) == 2
        assert await consumers() == {"crashed"}
        await asyncio.sleep(VT)
        (again,) = await bus.read_group("g", "alive", ["orders"], count=1, block_ms=50)
        assert (again.entry_id, again.delivery_count) == (held.entry_id, 2)
        assert await bus.forget_idle_consumers("no-such-stream") == 0
    finally:
        await bus.close()


@pytest.mark.redis
async def test_a_deleted_stream_gets_its_group_back(redis_client: Redis, redis_url: str) -> None:
    bus = RedisStreamsBus(redis_url, visibility_timeout=VT)
    try:
        await bus.publish("orders", _events(1))
        assert len(await bus.read_group("g", "c1", ["orders"], count=10, block_ms=50)) == 1
        await redis_client.delete("orders")
        await bus.publish("orders", _events(2))
        assert len(await bus.read_group("g", "c1", ["orders"], count=10, block_ms=50)) == 2
    finally:
        await bus.close()


# -- SQLite specifics ------------------------------------------------------------


async def test_sqlite_close_waits_for_a_cancelled_publish(tmp_path: Path) -> None:
    # A caller cancelled mid-publish must not let close() pull the connection from
    # under the worker thread (this crashed the interpreter once).
    bus = SqliteEventLog(tmp_path / "events.db")
    task = asyncio.create_task(bus.publish("orders", _events(5000)))
    await asyncio.sleep(0)
    task.cancel()
    await bus.close()
    with pytest.raises(RuntimeError):
        await bus.publish("orders", _events(1))


async def test_sqlite_writers_of_other_processes_are_waited_for(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    bus = SqliteEventLog(path)
    other = sqlite3.connect(path, isolation_level=None)  # another process's connection
    try:
        other.execute("BEGIN IMMEDIATE")  # holds the write lock
        publishing = asyncio.create_task(bus.publish("orders", _events(3)))
        await asyncio.sleep(0.3)
        assert not publishing.done()  # waiting, not failing
        other.execute("COMMIT")
        await asyncio.wait_for(publishing, timeout=10)
        assert len(await bus.read_all("orders")) == 3
    finally:
        other.close()
        await bus.close()


async def test_sqlite_log_with_unique_event_ids_is_migrated(tmp_path: Path) -> None:
    # Logs written before replay existed stored an event id once; they are rebuilt
    # without the constraint, keeping entry ids and the id counter.
    path = tmp_path / "events.db"
    old = _events(3)
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE entries (id INTEGER PRIMARY KEY AUTOINCREMENT, stream TEXT NOT NULL,"
            " event_id TEXT NOT NULL UNIQUE, type TEXT NOT NULL, subject TEXT NOT NULL,"
            " body BLOB NOT NULL, appended_at REAL NOT NULL)"
        )
        conn.executemany(
            "INSERT INTO entries (stream, event_id, type, subject, body, appended_at)"
            " VALUES ('orders', ?, ?, ?, ?, 0)",
            [(e.id, e.type, e.subject, encode_event(e)) for e in old],
        )
        conn.execute("DELETE FROM entries WHERE id = 3")
    bus = SqliteEventLog(path)
    try:
        await bus.publish("orders", old[:1])
        stored = await bus.read_all("orders")
        assert [(i, e.id) for i, _, e in stored] == [
            ("1", old[0].id),
            ("2", old[1].id),
            ("4", old[0].id),
        ]
    finally:
        await bus.close()


async def test_sqlite_consumers_in_several_processes_share_without_overlap(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.db"
    producer = SqliteEventLog(path)
    events = _events(300)
    await producer.publish("orders", events)
    script = (
        "import asyncio, sys\n"
        "from shared.events.sqlite_log import SqliteEventLog\n"
        "async def main():\n"
        "    bus = SqliteEventLog(sys.argv[1], poll_interval=0.001)\n"
        "    while batch := await bus.read_group('g', sys.argv[2], ['orders'], 5, 300):\n"
        "        for d in batch:\n"
        "            print(d.event.id, flush=True)\n"
        "        await bus.ack('g', 'orders', [d.entry_id for d in batch])\n"
        "    await bus.close()\n"
        "asyncio.run(main())\n"
    )
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            script,
            str(path),
            f"p{i}",
            stdout=asyncio.subprocess.PIPE,
            cwd=Path(__file__).parents[2],
        )
        for i in range(3)
    ]
    outputs = await asyncio.gather(*(p.communicate() for p in processes))
    assert all(p.returncode == 0 for p in processes)
    seen = [line for out, _ in outputs for line in out.decode().split()]
    assert sorted(seen) == sorted(e.id for e in events)  # each exactly once
    lag = _lag_of(await producer.lag(), "g", "orders")
    assert (lag.pending, lag.lag) == (0, 0)
    await producer.close()
