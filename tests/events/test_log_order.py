"""The embedded log delivers a consumer's streams in the order they were appended: an
event never overtakes an earlier one of another stream the consumer reads (an invoice
of a shipment comes after the shipment, where a share per stream would hand the
invoice over a batch ahead of a busier stream's shipment)."""

from __future__ import annotations

from pathlib import Path

from shared.events.sqlite_log import SqliteEventLog
from tests.support.events import Thing, thing_event


async def test_two_streams_are_delivered_in_the_order_they_were_appended(
    tmp_path: Path,
) -> None:
    log = SqliteEventLog(tmp_path / "events.db", poll_interval=0.005)
    try:
        # A busy stream (four entries for every one of the quiet stream), interleaved.
        appended: list[int] = []
        for n in range(40):
            stream = "quiet" if n % 5 == 4 else "busy"
            await log.publish(stream, [thing_event(f"s{n}", 1, n)])
            appended.append(n)
        delivered: list[int] = []
        while batch := await log.read_group("g", "c1", ["quiet", "busy"], 3, block_ms=50):
            delivered += [d.event.payload(Thing).n for d in batch]
            for stream in ("quiet", "busy"):
                await log.ack("g", stream, [d.entry_id for d in batch if d.stream == stream])
        assert delivered == appended
    finally:
        await log.close()
