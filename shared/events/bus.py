"""The event bus interface, with two engines behind it and one conformance suite
(tests/events/test_conformance.py):

- the embedded SQLite log (``sqlite:///PATH``, the zero-setup default);
- Redis Streams (``redis://HOST:PORT/DB``) for production.

Semantics both keep: per-stream order; consumer groups (each group sees every entry;
the consumers of one group share them, never both handling one entry); at-least-once
delivery (an entry is pending until acked, and reclaimed by another consumer of the
group after the visibility timeout); delivery counts; dead letters (a poison entry is
moved to the stream's dead-letter list with the reason, and acked); replay (a dead
letter is re-published to its stream). Publishing may store an event twice (a relay
crash between publish and mark); consumers deduplicate by event id in their inbox.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Protocol

import msgspec

from shared.events.envelope import Event

DEFAULT_MAX_DELIVERIES = 5
DEFAULT_VISIBILITY_TIMEOUT = 30.0
DEFAULT_TRIM_EVERY = 1000


def trim_interval(max_len: int | None) -> int:
    """Appends between two trims of a stream: a stream holds at most about twice
    ``max_len`` entries (plus those its groups have not acknowledged)."""
    return max(1, min(DEFAULT_TRIM_EVERY, max_len or DEFAULT_TRIM_EVERY))


class Delivery(msgspec.Struct, frozen=True):
    stream: str
    entry_id: str
    event: Event
    delivery_count: int


class DeadLetter(msgspec.Struct, frozen=True):
    dead_letter_id: str
    stream: str
    group: str
    entry_id: str
    event: Event
    deliveries: int
    reason: str
    dead_at: datetime


class GroupLag(msgspec.Struct, frozen=True):
    group: str
    stream: str
    pending: int  # delivered, not yet acknowledged
    oldest_pending_seconds: float  # 0 when nothing is pending
    lag: int  # entries not yet delivered to the group


class EventBus(Protocol):
    visibility_timeout: float  # seconds an unacked delivery stays with its consumer
    max_len: int | None  # entries kept per stream (None: all), unacked ones always kept

    async def publish(self, stream: str, events: Sequence[Event]) -> None:
        """Append in order."""

    async def read_group(
        self,
        group: str,
        consumer: str,
        streams: Sequence[str],
        count: int,
        block_ms: int,
        types: Collection[str] | None = None,
    ) -> list[Delivery]:
        """Entries other consumers of the group took and did not ack within the visibility
        timeout (their delivery count raised), then new entries; at most ``count`` per
        stream. Blocks up to ``block_ms`` when there is nothing (0: never blocks). A group
        read for the first time starts at the beginning of the stream. ``types``: the
        event types the group handles; entries of other types are passed over for the
        group (acknowledged, never delivered)."""

    async def ack(self, group: str, stream: str, entry_ids: Sequence[str]) -> None: ...

    async def retry_later(self, group: str, delivery: Delivery, delay_seconds: float) -> None:
        """Leave the entry pending, to be delivered again after ``delay_seconds``
        (backoff without blocking the entries behind it). The delay is capped at the
        visibility timeout; the delivery count is unchanged until the redelivery."""

    async def dead_letter(self, group: str, delivery: Delivery, reason: str) -> None:
        """Move the entry to the stream's dead letters with the reason, and ack it, in one
        step. Nothing happens when the entry is no longer pending (acked, or already
        dead-lettered)."""

    async def dead_letters(
        self, stream: str | None = None, limit: int = 100
    ) -> list[DeadLetter]: ...

    async def replay_dead_letter(self, dead_letter_id: str) -> bool:
        """Re-publish the dead letter's event to its stream (a new entry, the same event
        id: every group receives it again) and drop the dead letter, in one step. False
        when there is no such dead letter."""

    async def read_all(
        self, stream: str | None = None, after: str | None = None, limit: int = 100
    ) -> list[tuple[str, str, Event]]:
        """(entry id, stream, event) in order, after the entry id ``after`` (exclusive;
        pass the last id of a page to get the next), for tail and replay. Without a
        stream, every stream's entries in append order."""

    async def lag(self) -> list[GroupLag]:
        """Per group and stream, sorted by group then stream."""

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


def open_bus(
    url: str,
    *,
    visibility_timeout: float = DEFAULT_VISIBILITY_TIMEOUT,
    max_len: int | None = None,
) -> EventBus:
    """The engine for ``url``. ``max_len`` bounds each stream and its dead letters (the
    publisher trims now and then; trimming never drops an entry a group has not
    acknowledged); None keeps everything."""
    if url.startswith("sqlite:///"):
        from shared.events.sqlite_log import SqliteEventLog

        return SqliteEventLog(
            url.removeprefix("sqlite:///"), visibility_timeout=visibility_timeout, max_len=max_len
        )
    if url.startswith(("redis://", "rediss://")):
        from shared.events.redis_streams import RedisStreamsBus

        return RedisStreamsBus(url, visibility_timeout=visibility_timeout, max_len=max_len)
    raise ValueError(f"unsupported TALLY_BUS_URL: {url!r} (sqlite:///PATH or redis://HOST:PORT/DB)")
