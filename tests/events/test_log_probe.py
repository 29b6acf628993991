"""The embedded log's idle consumers: a consumer of a quiet stream takes no write lock
(no claim) while other streams of the log get entries, and still gets its own the
moment they arrive."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
