"""The embedded log's idle consumers: a consumer of a quiet stream takes no write lock
(no claim) while other streams of the log get entries, and still gets its own the
moment they arrive."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from shared.events.sqlite_log import SqliteEventLog
from tests.support.events import Thing, thing_event


async def test_a_quiet_streams_consumer_claims_only_when_its_stream_grows(
    tmp_path: Path,
) -> None:
    log = SqliteEventLog(tmp_path / "events.db", poll_interval=0.005)
    claims: list[tuple[str, ...]] = []
    claim = log._claim

    def counting_claim(group: str, consumer: str, streams: Any, count: int, types: Any) -> Any:
        claims.append(tuple(streams))
        return claim(group, consumer, streams, count, types)

    log._claim = counting_claim  # type: ignore[method-assign]
    try:
        assert await log.read_group("g", "c1", ["quiet"], 10, block_ms=20) == []
        assert len(claims) == 1  # the first look claims (and creates the group)

        for n in range(5):
            await log.publish("busy", [thing_event(f"s{n}", 1, n)])
        assert await log.read_group("g", "c1", ["quiet"], 10, block_ms=50) == []
        assert len(claims) == 1  # the busy stream moved; the quiet one did not

        await log.publish("quiet", [thing_event("s99", 1, 99)])
        got = await log.read_group("g", "c1", ["quiet"], 10, block_ms=1000)
        assert [d.event.payload(Thing).n for d in got] == [99]
        assert len(claims) == 2
    finally:
        await log.close()


async def test_an_idle_consumer_looks_on_its_own_thread_unless_the_log_is_busy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its looks run where it runs (no worker thread per look, 100 a second); while
    another thread holds the log's connection it looks from a worker thread, and an
    entry appended meanwhile still reaches it."""
    log = SqliteEventLog(tmp_path / "events.db", poll_interval=0.005)
    handed_off: list[str] = []
    real_to_thread = asyncio.to_thread

    async def counted(fn: Any, /, *args: Any) -> Any:
        handed_off.append(getattr(args[0], "__name__", "?") if args else "?")
        return await real_to_thread(fn, *args)

    monkeypatch.setattr(asyncio, "to_thread", counted)
    try:
        assert await log.read_group("g", "c1", ["s"], 10, block_ms=20) == []  # creates
        handed_off.clear()
        assert await log.read_group("g", "c1", ["s"], 10, block_ms=60) == []
        assert handed_off == []

        held = threading.Event()

        def another_threads_claim() -> None:
            with log._lock:
                held.set()
                time.sleep(0.05)

        holder = threading.Thread(target=another_threads_claim)
        holder.start()
        held.wait()
        assert await log.read_group("g", "c1", ["s"], 10, block_ms=20) == []
        holder.join()
        # The consumer's own look, and the shared watch's looks (decision 0064).
        assert "_probe" in handed_off
        assert set(handed_off) <= {"_probe", "_data_version", "_heads"}

        await log.publish("s", [thing_event("s1", 1, 7)])
        got = await log.read_group("g", "c1", ["s"], 10, block_ms=1000)
        assert [d.event.payload(Thing).n for d in got] == [7]
    finally:
        await log.close()


async def test_idle_consumers_wait_on_one_watch_and_wake_for_another_process_entry(
    tmp_path: Path,
) -> None:
    """Decision 0064: a consumer that found nothing no longer looks at the log every
    ``poll_interval``: it waits until the process's one watch sees its streams grow. An
    entry appended through another connection (another process) wakes it at once, well
    before its read's block time."""
    log = SqliteEventLog(tmp_path / "events.db", poll_interval=0.005)
    other_process = SqliteEventLog(tmp_path / "events.db", poll_interval=0.005)
    probes: list[str] = []
    probe = log._probe

    def counted(group: str, streams: Any) -> Any:
        probes.append(group)
        return probe(group, streams)

    log._probe = counted  # type: ignore[method-assign]
    try:
        assert await log.read_group("g1", "c1", ["s"], 10, block_ms=20) == []  # creates
        probes.clear()
        idle = [log.read_group(group, "c1", ["s"], 10, block_ms=300) for group in ("g1", "g2")]
        assert await asyncio.gather(*idle) == [[], []]
        # Each consumer looked when it began and when its block time ran out (g2 also
        # claimed once to make its group), not 60 times at 5 ms.
        assert len(probes) <= 6, probes

        async def append_soon() -> None:
            await asyncio.sleep(0.1)
            await other_process.publish("s", [thing_event("s1", 1, 5)])

        started = time.monotonic()
        got, _ = await asyncio.gather(
            log.read_group("g1", "c1", ["s"], 10, block_ms=10_000), append_soon()
        )
        assert [d.event.payload(Thing).n for d in got] == [5]
        assert time.monotonic() - started < 5.0  # woken by the watch, not by the block time
    finally:
        await log.close()
        await other_process.close()
