"""The embedded log's idle consumers: a consumer of a quiet stream takes no write lock
(no claim) while other streams of the log get entries, and still gets its own the
moment they arrive."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from shared.events.envelope import new_event
from shared.events.sqlite_log import SqliteEventLog


class Payload(msgspec.Struct, frozen=True):
    n: int


def event(n: int) -> Any:
    return new_event(
        source="tally.test", type_="thing.done", subject=f"s{n}", sequence=1, payload=Payload(n)
    )


async def test_a_quiet_streams_consumer_claims_only_when_its_stream_grows(
    tmp_path: Path,
) -> None:
    log = SqliteEventLog(tmp_path / "events.db", poll_interval=0.005)
    claims: list[tuple[str, ...]] = []
    claim = log._claim

    def counting_claim(group: str, consumer: str, streams: Any, count: int) -> Any:
        claims.append(tuple(streams))
        return claim(group, consumer, streams, count)

    log._claim = counting_claim  # type: ignore[method-assign]
    try:
        assert await log.read_group("g", "c1", ["quiet"], 10, block_ms=20) == []
        assert len(claims) == 1  # the first look claims (and creates the group)

        for n in range(5):
            await log.publish("busy", [event(n)])
        assert await log.read_group("g", "c1", ["quiet"], 10, block_ms=50) == []
        assert len(claims) == 1  # the busy stream moved; the quiet one did not

        await log.publish("quiet", [event(99)])
        got = await log.read_group("g", "c1", ["quiet"], 10, block_ms=1000)
        assert [d.event.payload(Payload).n for d in got] == [99]
        assert len(claims) == 2
    finally:
        await log.close()
