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
