"""``RedisStreamsBus``: the event bus on Redis Streams (see the package's docstring
for how it keeps the bus's semantics)."""

from __future__ import annotations

import heapq
import logging
import re
import time
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from shared.events.bus import (
    DEFAULT_VISIBILITY_TIMEOUT,
    DeadLetter,
    Delivery,
    GroupLag,
    trim_interval,
)
from shared.events.envelope import Event, decode_event, encode_event
from shared.events.redis_streams import scripts

log = logging.getLogger("tally.bus")

STREAMS_KEY = "tally:bus:streams"
DEAD_SUFFIX = ":dead"

_ID = re.compile(r"^\d+-\d+$")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class RedisStreamsBus:
    def __init__(
        self,
        url: str,
        *,
        visibility_timeout: float = DEFAULT_VISIBILITY_TIMEOUT,
        max_len: int | None = None,
        trim_every: int | None = None,
    ) -> None:
        self.url = url
        self.visibility_timeout = visibility_timeout
        self.max_len = max_len
        self.trim_every = trim_every or trim_interval(max_len)
        self._redis: Redis = Redis.from_url(url)
        self._dead_letter_script = self._redis.register_script(scripts.DEAD_LETTER)
        self._replay_script = self._redis.register_script(scripts.REPLAY)
        self._retry_script = self._redis.register_script(scripts.RETRY_LATER)
        self._trim_script = self._redis.register_script(scripts.TRIM)
        self._forget_script = self._redis.register_script(scripts.FORGET_IDLE_CONSUMERS)
        # A blocking read wakes up at least this often to take over expired entries.
        self._slice_ms = max(10, int(min(0.25, visibility_timeout / 4) * 1000))
        self._groups: set[tuple[str, str]] = set()
        self._autoclaim_cursors: dict[tuple[str, str], str] = {}
        self._appended_since_trim: dict[str, int] = {}

    @property
    def client(self) -> Redis:
        return self._redis

    # -- producing -------------------------------------------------------
    async def publish(self, stream: str, events: Sequence[Event]) -> None:
        if not events:
            return
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.sadd(STREAMS_KEY, stream)
            for event in events:
                pipe.xadd(
                    stream,
                    {"event": encode_event(event), "type": event.type, "subject": event.subject},
                )
            await pipe.execute()
        appended = self._appended_since_trim.get(stream, 0) + len(events)
        if appended >= self.trim_every:
            appended = 0
            try:
                await self.trim(stream)
                await self.forget_idle_consumers(stream)
            except RedisError:  # the events are published; maintenance waits for next time
                log.exception("trimming %s failed", stream)
        self._appended_since_trim[stream] = appended

    # -- consuming -------------------------------------------------------
    async def _ensure_groups(self, group: str, streams: Sequence[str]) -> None:
        missing = [s for s in streams if (group, s) not in self._groups]
        if not missing:
            return
        for stream in missing:
            try:
                await self._redis.xgroup_create(stream, group, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
        await self._redis.sadd(STREAMS_KEY, *missing)
        self._groups.update((group, s) for s in missing)

    async def _reclaim(
        self, group: str, consumer: str, streams: Sequence[str], count: int
    ) -> list[Delivery]:
        min_idle_ms = int(self.visibility_timeout * 1000)
        async with self._redis.pipeline(transaction=False) as pipe:
            for stream in streams:
                start = self._autoclaim_cursors.get((group, stream), "0-0")
                pipe.xautoclaim(stream, group, consumer, min_idle_ms, start, count=count)
            results = await pipe.execute()
        claimed: list[tuple[str, str, bytes]] = []
        for stream, result in zip(streams, results, strict=True):
            cursor, entries = result[0], result[1]
            self._autoclaim_cursors[(group, stream)] = _text(cursor)
            for entry_id, fields in entries:
                if fields:  # entries deleted from the stream are dropped by XAUTOCLAIM
                    claimed.append((stream, _text(entry_id), fields[b"event"]))
        if not claimed:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for stream, entry_id, _ in claimed:
                pipe.xpending_range(stream, group, entry_id, entry_id, 1)
            pending = await pipe.execute()
        return [
            Delivery(stream, entry_id, decode_event(body), int(p[0]["times_delivered"]) if p else 2)
            for (stream, entry_id, body), p in zip(claimed, pending, strict=True)
        ]

    async def _read_new(
        self, group: str, consumer: str, streams: Sequence[str], count: int, block_ms: int | None
    ) -> list[Delivery]:
        response: Any = await self._redis.xreadgroup(
            group, consumer, dict.fromkeys(streams, ">"), count=count, block=block_ms
        )
        return [
            Delivery(_text(stream), _text(entry_id), decode_event(fields[b"event"]), 1)
            for stream, entries in response or []
            for entry_id, fields in entries
        ]

    async def _read_once(
        self, group: str, consumer: str, streams: Sequence[str], count: int, block_ms: int | None
    ) -> list[Delivery]:
        reclaimed = await self._reclaim(group, consumer, streams, count)
        room = count - len(reclaimed)
        if room <= 0:
            return reclaimed
        fresh = await self._read_new(
            group, consumer, streams, room, None if reclaimed else block_ms
        )
        return reclaimed + fresh

    async def read_group(
        self,
        group: str,
        consumer: str,
        streams: Sequence[str],
        count: int,
        block_ms: int,
        types: Collection[str] | None = None,
    ) -> list[Delivery]:
        streams = list(dict.fromkeys(streams))
        wanted = None if types is None else frozenset(types)
        if not streams or count <= 0:
            return []
        await self._ensure_groups(group, streams)
        deadline = time.monotonic() + block_ms / 1000
        regrouped = False
        while True:
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            # BLOCK 0 would wait forever: no BLOCK at all when the time is up.
            block = min(remaining_ms, self._slice_ms) if remaining_ms > 0 else None
            try:
                deliveries = await self._read_once(group, consumer, streams, count, block)
            except ResponseError as exc:
                if "NOGROUP" not in str(exc) or regrouped:
                    raise
                # The stream or its group was deleted under us: create it again, once.
                regrouped = True
                self._groups.difference_update((group, s) for s in streams)
                await self._ensure_groups(group, streams)
                continue
            if wanted is not None and deliveries:
                deliveries = await self._pass_over(group, deliveries, wanted)
            if deliveries or remaining_ms <= 0:
                return deliveries

    async def _pass_over(
        self, group: str, deliveries: list[Delivery], wanted: frozenset[str]
    ) -> list[Delivery]:
        """Acks the deliveries of types the group does not handle; returns the others."""
        skipped: dict[str, list[str]] = {}
        for delivery in deliveries:
            if delivery.event.type not in wanted:
                skipped.setdefault(delivery.stream, []).append(delivery.entry_id)
        if not skipped:
            return deliveries
        async with self._redis.pipeline(transaction=False) as pipe:
            for stream, entry_ids in skipped.items():
                pipe.xack(stream, group, *entry_ids)
            await pipe.execute()
        return [d for d in deliveries if d.event.type in wanted]

    async def ack(self, group: str, stream: str, entry_ids: Sequence[str]) -> None:
        if entry_ids:
            await self._redis.xack(stream, group, *entry_ids)

    async def retry_later(self, group: str, delivery: Delivery, delay_seconds: float) -> None:
        delay = min(max(delay_seconds, 0.0), self.visibility_timeout)
        idle_ms = int((self.visibility_timeout - delay) * 1000)
        await self._retry_script(keys=[delivery.stream], args=[group, delivery.entry_id, idle_ms])

    async def dead_letter(self, group: str, delivery: Delivery, reason: str) -> None:
        event = delivery.event
        await self._dead_letter_script(
            keys=[delivery.stream, delivery.stream + DEAD_SUFFIX],
            args=[
                group,
                delivery.entry_id,
                encode_event(event),
                event.type,
                event.subject,
                delivery.delivery_count,
                reason,
                repr(time.time()),
                self.max_len or 0,
            ],
        )

    async def _streams(self) -> list[str]:
        members = await self._redis.smembers(STREAMS_KEY)
        return sorted(_text(m) for m in members)

    async def dead_letters(self, stream: str | None = None, limit: int = 100) -> list[DeadLetter]:
        streams = [stream] if stream is not None else await self._streams()
        async with self._redis.pipeline(transaction=False) as pipe:
            for s in streams:
                pipe.xrange(s + DEAD_SUFFIX, "-", "+", count=limit)
            results = await pipe.execute()
        found: list[tuple[tuple[int, int], str, DeadLetter]] = []
        for s, entries in zip(streams, results, strict=True):
            for dead_id, fields in entries:
                did = _text(dead_id)
                dead_at = (
                    float(fields[b"dead_at"]) if b"dead_at" in fields else _id_key(did)[0] / 1000
                )
                found.append(
                    (
                        _id_key(did),
                        s,
                        DeadLetter(
                            dead_letter_id=f"{s}{DEAD_SUFFIX}|{did}",
                            stream=s,
                            group=_text(fields[b"group"]),
                            entry_id=_text(fields[b"entry_id"]),
                            event=decode_event(fields[b"event"]),
                            deliveries=int(fields[b"deliveries"]),
                            reason=_text(fields[b"reason"]),
                            dead_at=datetime.fromtimestamp(dead_at, UTC),
                        ),
                    )
                )
        found.sort(key=lambda item: (item[0], item[1]))
        return [letter for _, _, letter in found[:limit]]

    async def replay_dead_letter(self, dead_letter_id: str) -> bool:
        key, _, dead_id = dead_letter_id.rpartition("|")
        if not key.endswith(DEAD_SUFFIX) or not _ID.match(dead_id):
            return False
        stream = key.removesuffix(DEAD_SUFFIX)
        replayed = await self._replay_script(keys=[key, stream], args=[dead_id])
        return replayed is not None

    # -- operating -------------------------------------------------------
    async def read_all(
        self, stream: str | None = None, after: str | None = None, limit: int = 100
    ) -> list[tuple[str, str, Event]]:
        if after is not None and not _ID.match(after) and not after.isdigit():
            raise ValueError(f"not a stream entry id: {after!r}")
        start = "-" if after is None else f"({after}"
        if limit <= 0:
            return []
        streams = [stream] if stream is not None else await self._streams()
        async with self._redis.pipeline(transaction=False) as pipe:
            for s in streams:
                pipe.xrange(s, start, "+", count=limit)
            results = await pipe.execute()
        merged = heapq.merge(
            *(
                [(_id_key(_text(i)), s, _text(i), fields[b"event"]) for i, fields in entries]
                for s, entries in zip(streams, results, strict=True)
            )
        )
        page: list[tuple[str, str, Event]] = []
        last_key: tuple[int, int] | None = None
        for key, s, entry_id, body in merged:
            # Ids of different streams may be equal: a page never ends inside such a
            # tie, so that "after the last id" loses none of them.
            if len(page) >= limit and key != last_key:
                break
            page.append((entry_id, s, decode_event(body)))
            last_key = key
        return page

    async def _count_after(self, stream: str, after: str) -> int:
        counted, start = 0, f"({after}"
        while True:
            entries: Any = await self._redis.xrange(stream, start, "+", count=1000)
            counted += len(entries)
            if len(entries) < 1000:
                return counted
            start = f"({_text(entries[-1][0])}"

    async def lag(self) -> list[GroupLag]:
        streams = await self._streams()
        async with self._redis.pipeline(transaction=False) as pipe:
            for s in streams:
                pipe.xinfo_groups(s)
            infos = await pipe.execute(raise_on_error=False)
        groups: list[tuple[str, dict[str, Any]]] = []
        for s, info in zip(streams, infos, strict=True):
            if not isinstance(info, Exception):  # else the stream is gone
                groups.extend((s, g) for g in info)
        if not groups:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.time()
            for s, g in groups:
                pipe.xpending(s, g["name"])
            results = await pipe.execute()
        seconds, micros = results[0]
        now = seconds + micros / 1_000_000
        out: list[GroupLag] = []
        for (s, g), summary in zip(groups, results[1:], strict=True):
            pending = int(summary["pending"])
            oldest = 0.0
            if pending and summary["min"] is not None:
                oldest = max(0.0, now - _id_key(_text(summary["min"]))[0] / 1000)
            behind = g.get("lag")
            if behind is None:  # Redis could not tell (entries deleted in range): count
                behind = await self._count_after(s, _text(g["last-delivered-id"]))
            out.append(
                GroupLag(
                    group=_text(g["name"]),
                    stream=s,
                    pending=pending,
                    oldest_pending_seconds=oldest,
                    lag=int(behind),
                )
            )
        out.sort(key=lambda item: (item.group, item.stream))
        return out

    async def trim(self, stream: str, max_len: int | None = None) -> int:
        """Drops the oldest entries beyond the newest ``max_len``, but none that a group
        has pending or has not been delivered yet; returns how many were dropped."""
        keep = self.max_len if max_len is None else max_len
        if keep is None:
            return 0
        return int(await self._trim_script(keys=[stream], args=[keep]))

    async def forget_idle_consumers(self, stream: str, idle_seconds: float | None = None) -> int:
        """Removes the stream's consumers (of every group) that have nothing pending and
        have been idle longer than ``idle_seconds`` (twice the visibility timeout); a
        live consumer is named again by its next read. Returns how many went."""
        idle = 2 * self.visibility_timeout if idle_seconds is None else idle_seconds
        try:
            removed = await self._forget_script(keys=[stream], args=[int(idle * 1000)])
        except ResponseError as exc:
            if "no such key" in str(exc).lower():
                return 0
            raise
        return int(removed)

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()
