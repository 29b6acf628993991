"""A handler that raises for one poison event: the event lands in the dead letters
after N deliveries, every event behind it is still processed, and replaying the dead
letter after the fix applies it exactly once.

The consumer is the real ``shared.events.inbox.EventConsumer`` on a real database (a
SQLite file) and the real bus engine; only the handler is the test's.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import msgspec
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert

from shared.db import Database, Tx
from shared.events.envelope import Event, new_event
from shared.events.inbox import ApplyOnly, EventConsumer, RetryPolicy
from tests.faults.helpers import bus_at, count, group_settled, query
from tests.support.polling import eventually_async

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

STREAM = "tally.test"
GROUP = "poison-test"
MAX_DELIVERIES = 3
EVENTS = 30
POISON = 7  # the index of the poison event


class Numbered(msgspec.Struct, frozen=True):
    n: int


class PoisonHandler:
    """Records each event's ``n`` in ``effects``; raises for the poison while broken."""

    def __init__(self, effects: Table) -> None:
        self.effects = effects
        self.broken = True
        self.calls: Counter[int] = Counter()

    async def __call__(self, tx: Tx, event: Event) -> None:
        n = event.payload(Numbered).n
        self.calls[n] += 1
        if n == POISON and self.broken:
            raise ValueError(f"cannot digest event {n}")
        await tx.conn.execute(insert(self.effects).values(event_id=event.id, n=n))


@asynccontextmanager
async def consuming(consumer: EventConsumer) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)


async def test_d_poison_event_is_dead_lettered_and_replays_once_after_the_fix(
    bus_url: str, tmp_path: Path
) -> None:
    metadata = MetaData()
    effects = Table(
        "effects",
        metadata,
        Column("event_id", String(64), primary_key=True),
        Column("n", Integer, nullable=False),
    )
    db_path = tmp_path / "consumer.db"
    db = Database(f"sqlite+aiosqlite:///{db_path}", metadata)
    handler = PoisonHandler(effects)
    events = [
        new_event(
            source="tally.test",
            type_="test.numbered",
            subject=f"thing-{n}",
            sequence=1,
            payload=Numbered(n),
        )
        for n in range(EVENTS)
    ]
    poison = events[POISON]

    def applied() -> Counter[int]:
        return Counter(n for (n,) in query(db_path, "SELECT n FROM effects"))

    async with bus_at(bus_url, visibility_timeout=5.0) as bus:
        consumer = EventConsumer(
            db=db,
            bus=bus,
            group=GROUP,
            streams=[STREAM],
            handlers={"test.numbered": ApplyOnly(handler)},
            ordered_types=(),
            policy=RetryPolicy(max_deliveries=MAX_DELIVERIES, base_seconds=0.05, cap_seconds=0.2),
            block_ms=50,
        )
        # The inbox tables are on the consumer's metadata now: create the schema.
        await db.create_schema()
        try:
            async with consuming(consumer):
                await bus.publish(STREAM, events)

                async def poisoned() -> bool:
                    return len(await bus.dead_letters(STREAM)) == 1

                assert await eventually_async(poisoned, timeout=20), handler.calls
                everything_else = set(range(EVENTS)) - {POISON}
                done = await eventually_async(lambda: set(applied()) == everything_else, timeout=20)
                assert done, (
                    f"later events not processed: {sorted(everything_else - set(applied()))}"
                )

                (dead,) = await bus.dead_letters(STREAM)
                assert dead.event.id == poison.id
                assert dead.group == GROUP
                assert dead.deliveries == MAX_DELIVERIES
                assert "ValueError" in dead.reason and "cannot digest event 7" in dead.reason
                assert handler.calls[POISON] == MAX_DELIVERIES
                assert await eventually_async(lambda: group_settled(bus, GROUP), timeout=10)
                assert POISON not in applied()

                # The fix, then the replay: applied once.
                handler.broken = False
                assert await bus.replay_dead_letter(dead.dead_letter_id)
                assert await eventually_async(lambda: POISON in applied(), timeout=20)
                assert await eventually_async(lambda: group_settled(bus, GROUP), timeout=10)
                assert not await bus.replay_dead_letter(dead.dead_letter_id)
                assert await bus.dead_letters(STREAM) == []
                # A second copy of it (a replay run twice, say) has no effect.
                await bus.publish(STREAM, [poison])
                assert await eventually_async(lambda: group_settled(bus, GROUP), timeout=10)
        finally:
            await db.dispose()

    assert applied() == Counter(range(EVENTS))  # every event's effect exactly once
    assert handler.calls[POISON] == MAX_DELIVERIES + 1
    assert count(db_path, "inbox") == EVENTS
