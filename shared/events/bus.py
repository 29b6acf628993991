"""The event bus interface. Engines: the embedded SQLite log (default) and, from the
next milestone, Redis Streams; both keep consumer-group, ack and redelivery semantics."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import msgspec

from shared.events.envelope import Event


class Delivery(msgspec.Struct, frozen=True):
    stream: str
    entry_id: str
    event: Event
    delivery_count: int


class EventBus(Protocol):
    async def publish(self, stream: str, events: Sequence[Event]) -> None:
        """Append; publishing an event id twice stores it once."""

    async def read_group(
        self, group: str, consumer: str, streams: Sequence[str], count: int, block_ms: int
    ) -> list[Delivery]:
        """New entries for the group, plus entries another consumer took and never acked
        within the visibility timeout. Blocks up to ``block_ms`` when there is nothing."""

    async def ack(self, group: str, stream: str, entry_ids: Sequence[str]) -> None: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


def open_bus(url: str) -> EventBus:
    if url.startswith("sqlite:///"):
        from shared.events.sqlite_log import SqliteEventLog

        return SqliteEventLog(url.removeprefix("sqlite:///"))
    raise ValueError(f"unsupported TALLY_BUS_URL scheme: {url!r} (supported: sqlite:///PATH)")
