"""The embedded event log: consumer-group semantics the services rely on."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import pytest

from shared.events.envelope import new_event
from shared.events.sqlite_log import SqliteEventLog


class Payload(msgspec.Struct, frozen=True):
    n: int


def _events(count: int, subject: str = "s") -> list:
    return [
        new_event(
            source="test",
            type_="test.happened",
            subject=subject,
            sequence=i + 1,
            payload=Payload(i),
        )
        for i in range(count)
    ]


@pytest.fixture
async def log(tmp_path: Path):
    bus = SqliteEventLog(tmp_path / "events.db", visibility_timeout=0.3, poll_interval=0.005)
    yield bus
    await bus.close()


async def test_a_group_receives_every_entry_in_order(log: SqliteEventLog) -> None:
    events = _events(20)
    await log.publish("orders", events)
    got = await log.read_group("g", "c1", ["orders"], count=100, block_ms=100)
    assert [d.event.id for d in got] == [e.id for e in events]
    assert all(d.delivery_count == 1 for d in got)


async def test_publishing_an_event_twice_stores_it_once(log: SqliteEventLog) -> None:
    events = _events(3)
    await log.publish("orders", events)
    await log.publish("orders", events)
    assert len(await log.read_all("orders")) == 3


async def test_unacked_entries_are_redelivered_after_the_visibility_timeout(
    log: SqliteEventLog,
) -> None:
    await log.publish("orders", _events(2))
    first = await log.read_group("g", "dead-consumer", ["orders"], count=10, block_ms=50)
    await log.ack("g", "orders", [first[0].entry_id])
    assert await log.read_group("g", "c2", ["orders"], count=10, block_ms=50) == []
    await asyncio.sleep(0.35)
    again = await log.read_group("g", "c2", ["orders"], count=10, block_ms=500)
    assert [d.entry_id for d in again] == [first[1].entry_id]
    assert again[0].delivery_count == 2


async def test_two_consumers_of_one_group_share_without_overlap(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    producer = SqliteEventLog(path)
    a = SqliteEventLog(path, poll_interval=0.001)
    b = SqliteEventLog(path, poll_interval=0.001)
    await producer.publish("orders", _events(200))

    async def drain(bus: SqliteEventLog, name: str) -> list[str]:
        seen: list[str] = []
        while batch := await bus.read_group("g", name, ["orders"], count=7, block_ms=30):
            seen += [d.event.id for d in batch]
            await bus.ack("g", "orders", [d.entry_id for d in batch])
        return seen

    got_a, got_b = await asyncio.gather(drain(a, "a"), drain(b, "b"))
    assert not set(got_a) & set(got_b)
    assert len(got_a) + len(got_b) == 200
    for bus in (producer, a, b):
        await bus.close()


async def test_groups_are_independent(log: SqliteEventLog) -> None:
    await log.publish("orders", _events(5))
    one = await log.read_group("billing", "c", ["orders"], count=10, block_ms=50)
    two = await log.read_group("availability", "c", ["orders"], count=10, block_ms=50)
    assert len(one) == len(two) == 5


async def test_close_waits_for_a_cancelled_publish(tmp_path: Path) -> None:
    # A caller cancelled mid-publish must not let close() pull the connection from
    # under the worker thread (this crashed the interpreter once).
    bus = SqliteEventLog(tmp_path / "events.db")
    task = asyncio.create_task(bus.publish("orders", _events(5000)))
    await asyncio.sleep(0)
    task.cancel()
    await bus.close()
    with pytest.raises(RuntimeError):
        await bus.publish("orders", _events(1))
