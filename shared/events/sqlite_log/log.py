"""``SqliteEventLog``: the event bus on the embedded SQLite log (see the package's
docstring for how it keeps the bus's semantics)."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any, TypeVar

from shared.events.bus import (
    DEFAULT_VISIBILITY_TIMEOUT,
    DeadLetter,
    Delivery,
    GroupLag,
    trim_interval,
)
from shared.events.envelope import Event, decode_event, encode_event
from shared.events.sqlite_log import dead_letters
from shared.events.sqlite_log.storage import (
    SCHEMA,
    is_busy,
    migrate_unique_event_id,
    parse_entry_id,
    retrying,
    writing,
)
from shared.events.sqlite_log.watch import HeadWatch

log = logging.getLogger("tally.bus")

T = TypeVar("T")


class SqliteEventLog:
    def __init__(
        self,
        path: str | Path,
        *,
        visibility_timeout: float = DEFAULT_VISIBILITY_TIMEOUT,
        poll_interval: float = 0.01,
        max_len: int | None = None,
        trim_every: int | None = None,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.visibility_timeout = visibility_timeout
        self.poll_interval = poll_interval
        self.max_len = max_len
        self.trim_every = trim_every or trim_interval(max_len)
        self._appended_since_trim: dict[str, int] = {}
        # No SQLite busy handler (timeout=0): ``retrying`` waits for other processes.
        self._conn = sqlite3.connect(
            self.path, timeout=0, isolation_level=None, check_same_thread=False
        )
        retrying(self._conn.execute, "PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        retrying(migrate_unique_event_id, self._conn)
        retrying(self._conn.executescript, SCHEMA)
        # A threading lock, not an asyncio one: a cancelled caller stops awaiting, but
        # its worker thread keeps using the connection; close() must wait for it.
        self._lock = threading.Lock()
        self._closed = False
        # Per (group, streams): the head last seen when the claim left nothing behind.
        self._last_seen_head: dict[tuple[str, tuple[str, ...]], int] = {}
        self._watch = HeadWatch(self._look, self._data_version, self._heads, poll_interval)

    # -- plumbing --------------------------------------------------------
    def _locked(self, fn: Callable[..., T], *args: Any) -> T:
        with self._lock:
            if self._closed:
                raise RuntimeError("the event log is closed")
            return retrying(fn, *args)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(self._locked, fn, *args)

    def _at_once(self, fn: Callable[..., T], *args: Any) -> T | None:
        """``fn(*args)`` on the caller's thread if the connection is free and SQLite
        answers without waiting, else None (the caller takes ``_run``). For an indexed
        read: a WAL reader waits for no writer, and the hand-off to a worker thread and
        back costs more than the read (an idle consumer probes 100 times a second)."""
        if not self._lock.acquire(blocking=False):
            return None
        try:
            if self._closed:
                raise RuntimeError("the event log is closed")
            return fn(*args)
        except sqlite3.OperationalError as exc:
            if is_busy(exc):
                return None
            raise
        finally:
            self._lock.release()

    async def _look(self, fn: Callable[..., T], *args: Any) -> T:
        """A read that never returns None: on this thread if it can, else a worker's."""
        got = self._at_once(fn, *args)
        return got if got is not None else await self._run(fn, *args)

    # -- producing -------------------------------------------------------
    def _publish(self, stream: str, events: Sequence[Event]) -> None:
        now = time.time()
        rows = [(stream, e.id, e.type, e.subject, encode_event(e), now) for e in events]
        with writing(self._conn) as conn:
            conn.executemany(
                "INSERT INTO entries (stream, event_id, type, subject, body, appended_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )

    async def publish(self, stream: str, events: Sequence[Event]) -> None:
        if not events:
            return
        await self._run(self._publish, stream, list(events))
        self._watch.wrote()
        if self.max_len is not None:
            appended = self._appended_since_trim.get(stream, 0) + len(events)
            if appended >= self.trim_every:
                appended = 0
                try:
                    await self.trim(stream)
                except sqlite3.Error:  # the events are published; trimming waits
                    log.exception("trimming %s failed", stream)
            self._appended_since_trim[stream] = appended

    def _trim(self, stream: str, keep: int) -> int:
        with writing(self._conn) as conn:
            (total,) = conn.execute(
                "SELECT COUNT(*) FROM entries WHERE stream = ?", (stream,)
            ).fetchone()
            excess = int(total) - keep
            if excess <= 0:
                return 0
            # The newest entry beyond ``keep``, and the first entry a group still needs.
            (last_excess,) = conn.execute(
                "SELECT id FROM entries WHERE stream = ? ORDER BY id LIMIT 1 OFFSET ?",
                (stream, excess - 1),
            ).fetchone()
            (needed,) = conn.execute(
                "SELECT MIN(first) FROM ("
                " SELECT MIN(entry_id) AS first FROM pending WHERE stream = ?"
                " UNION ALL"
                " SELECT last_delivered_id + 1 FROM consumer_groups WHERE stream = ?)",
                (stream, stream),
            ).fetchone()
            cut = last_excess if needed is None else min(last_excess, int(needed) - 1)
            return conn.execute(
                "DELETE FROM entries WHERE stream = ? AND id <= ?", (stream, cut)
            ).rowcount

    async def trim(self, stream: str, max_len: int | None = None) -> int:
        """Drops the oldest entries beyond the newest ``max_len``, but none that a group
        has pending or has not been delivered yet; returns how many were dropped."""
        keep = self.max_len if max_len is None else max_len
        if keep is None:
            return 0
        return await self._run(self._trim, stream, keep)

    # -- consuming -------------------------------------------------------
    def _probe(self, group: str, streams: Sequence[str]) -> tuple[int, float | None]:
        """Read-only: the head of the group's streams (their newest entry id), and the
        earliest delivery time of the group's pending entries (they are claimable from
        that time plus the timeout). The head is per stream, one index seek each: the
        log's global head moves with every append to any stream, and would send a quiet
        stream's consumer to claim (a write transaction) for nothing."""
        heads = " UNION ALL ".join(
            "SELECT MAX(id) AS id FROM entries WHERE stream = ?" for _ in streams
        )
        marks = ", ".join("?" * len(streams))  # placeholders only
        query = (
            f"SELECT (SELECT COALESCE(MAX(id), 0) FROM ({heads})),"  # noqa: S608
            " (SELECT MIN(delivered_at) FROM pending"
            f"  WHERE grp = ? AND stream IN ({marks}))"
        )
        head, earliest = self._conn.execute(query, (*streams, group, *streams)).fetchone()
        return int(head), (None if earliest is None else float(earliest))

    def _claim(
        self,
        group: str,
        consumer: str,
        streams: Sequence[str],
        count: int,
        types: Collection[str] | None = None,
    ) -> tuple[list[Delivery], bool]:
        """Up to ``count`` entries per stream: expired pending ones first, then new ones
        in the order they were appended across the streams (those of a type not in
        ``types`` passed over: never pending, never decoded). Also tells whether some
        stream filled its share (more may be waiting)."""
        now = time.time()
        expired_before = now - self.visibility_timeout
        out: list[Delivery] = []
        full = False
        candidates: list[tuple[int, str, str, bytes]] = []
        cutoff: int | None = None  # new entries after it wait: a stream's share ends there
        with writing(self._conn) as conn:
            for stream in streams:
                conn.execute(
                    "INSERT OR IGNORE INTO consumer_groups (grp, stream, last_delivered_id)"
                    " VALUES (?, ?, 0)",
                    (group, stream),
                )
                stuck = conn.execute(
                    "SELECT p.entry_id, p.deliveries, e.body FROM pending p"
                    " JOIN entries e ON e.id = p.entry_id"
                    " WHERE p.grp = ? AND p.stream = ? AND p.delivered_at < ?"
                    " ORDER BY p.entry_id LIMIT ?",
                    (group, stream, expired_before, count),
                ).fetchall()
                conn.executemany(
                    "UPDATE pending SET consumer = ?, delivered_at = ?, deliveries = ?"
                    " WHERE grp = ? AND stream = ? AND entry_id = ?",
                    [(consumer, now, n + 1, group, stream, entry_id) for entry_id, n, _ in stuck],
                )
                out.extend(
                    Delivery(stream, str(entry_id), decode_event(body), n + 1)
                    for entry_id, n, body in stuck
                )
                room = count - len(stuck)
                full = full or room <= 0
                if room <= 0:
                    continue
                (last,) = conn.execute(
                    "SELECT last_delivered_id FROM consumer_groups WHERE grp = ? AND stream = ?",
                    (group, stream),
                ).fetchone()
                fresh = conn.execute(
                    "SELECT id, type, body FROM entries WHERE stream = ? AND id > ?"
                    " ORDER BY id LIMIT ?",
                    (stream, last, room),
                ).fetchall()
                candidates.extend((entry_id, stream, kind, body) for entry_id, kind, body in fresh)
                if len(fresh) >= room:
                    full = True
                    cutoff = fresh[-1][0] if cutoff is None else min(cutoff, fresh[-1][0])
            # Entries of the streams merged in the log's order, up to where a stream's
            # share ended: an event never overtakes an earlier one of another stream
            # (an invoice of a shipment arrives after the shipment, not a batch ahead).
            taken = sorted(c for c in candidates if cutoff is None or c[0] <= cutoff)
            lasts: dict[str, int] = {}
            for entry_id, stream, _, _ in taken:
                lasts[stream] = entry_id
            if types is not None:
                taken = [c for c in taken if c[2] in types]
            conn.executemany(
                "INSERT INTO pending (grp, stream, entry_id, consumer, delivered_at,"
                " deliveries) VALUES (?, ?, ?, ?, ?, 1)",
                [(group, stream, entry_id, consumer, now) for entry_id, stream, _, _ in taken],
            )
            conn.executemany(
                "UPDATE consumer_groups SET last_delivered_id = ? WHERE grp = ? AND stream = ?",
                [(entry_id, group, stream) for stream, entry_id in lasts.items()],
            )
            out.extend(
                Delivery(stream, str(entry_id), decode_event(body), 1)
                for entry_id, stream, _, body in taken
            )
        return out, full

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
        key = (group, tuple(streams))
        deadline = time.monotonic() + block_ms / 1000
        while True:
            # A read-only look first: an idle consumer never takes the write lock.
            head, earliest = await self._look(self._probe, group, streams)
            reclaim_due = earliest is not None and earliest < time.time() - self.visibility_timeout
            if head != self._last_seen_head.get(key) or reclaim_due:
                deliveries, full = await self._run(
                    self._claim, group, consumer, streams, count, wanted
                )
                if not full:
                    self._last_seen_head[key] = head
                if deliveries:
                    return deliveries
                if full:  # a share of entries all passed over: more may follow at once
                    continue
            left = deadline - time.monotonic()
            if left <= 0:
                return []
            if earliest is not None:  # a pending entry falls due then
                left = min(left, earliest + self.visibility_timeout - time.time())
            await self._watch.wait(streams, self._last_seen_head.get(key), max(left, 0.001))

    def _data_version(self) -> int:
        """Changes when another connection commits to the file (SQLite counts it)."""
        return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def _heads(self, streams: Sequence[str]) -> dict[str, int]:
        """The newest entry id of each stream (0: none), one index seek each."""
        query = " UNION ALL ".join(
            "SELECT ?, MAX(id) FROM entries WHERE stream = ?" for _ in streams
        )
        rows = self._conn.execute(query, [value for s in streams for value in (s, s)])
        return {str(stream): int(head or 0) for stream, head in rows}

    def _ack(self, group: str, stream: str, entry_ids: Sequence[int]) -> None:
        with writing(self._conn) as conn:
            conn.executemany(
                "DELETE FROM pending WHERE grp = ? AND stream = ? AND entry_id = ?",
                [(group, stream, i) for i in entry_ids],
            )

    async def ack(self, group: str, stream: str, entry_ids: Sequence[str]) -> None:
        if entry_ids:
            await self._run(self._ack, group, stream, [parse_entry_id(i) for i in entry_ids])

    def _retry_later(self, group: str, stream: str, entry_id: int, delay: float) -> None:
        # Claimable once ``delivered_at`` is older than the timeout: pretend it was
        # delivered ``timeout - delay`` ago.
        redeliver_from = time.time() - self.visibility_timeout + delay
        with writing(self._conn) as conn:
            conn.execute(
                "UPDATE pending SET delivered_at = ? WHERE grp = ? AND stream = ? AND entry_id = ?",
                (redeliver_from, group, stream, entry_id),
            )

    async def retry_later(self, group: str, delivery: Delivery, delay_seconds: float) -> None:
        delay = min(max(delay_seconds, 0.0), self.visibility_timeout)
        await self._run(
            self._retry_later, group, delivery.stream, parse_entry_id(delivery.entry_id), delay
        )

    async def dead_letter(self, group: str, delivery: Delivery, reason: str) -> None:
        await self._run(
            dead_letters.move,
            self._conn,
            group,
            delivery.stream,
            parse_entry_id(delivery.entry_id),
            encode_event(delivery.event),
            delivery.delivery_count,
            reason,
            self.max_len,
        )

    async def dead_letters(self, stream: str | None = None, limit: int = 100) -> list[DeadLetter]:
        return await self._run(dead_letters.listed, self._conn, stream, limit)

    async def replay_dead_letter(self, dead_letter_id: str) -> bool:
        try:
            dead_id = int(dead_letter_id)
        except ValueError:
            return False
        replayed = await self._run(dead_letters.replay, self._conn, dead_id)
        self._watch.wrote()
        return replayed

    # -- operating -------------------------------------------------------
    def _read_all(self, stream: str | None, after: int, limit: int) -> list[tuple[str, str, Event]]:
        if stream is not None:
            rows = self._conn.execute(
                "SELECT id, stream, body FROM entries WHERE stream = ? AND id > ? ORDER BY id LIMIT ?",
                (stream, after, limit),
            ).fetchall()
        else:
            rows = self._conn.execute(
                "SELECT id, stream, body FROM entries WHERE id > ? ORDER BY id LIMIT ?",
                (after, limit),
            ).fetchall()
        return [(str(i), s, decode_event(b)) for i, s, b in rows]

    async def read_all(
        self, stream: str | None = None, after: str | None = None, limit: int = 100
    ) -> list[tuple[str, str, Event]]:
        start = 0 if after is None else parse_entry_id(after)
        return await self._run(self._read_all, stream, start, limit)

    def _lag(self) -> list[GroupLag]:
        now = time.time()
        rows = self._conn.execute(
            "SELECT g.grp, g.stream,"
            " (SELECT COUNT(*) FROM pending p WHERE p.grp = g.grp AND p.stream = g.stream),"
            " (SELECT MIN(e.appended_at) FROM pending p JOIN entries e ON e.id = p.entry_id"
            "   WHERE p.grp = g.grp AND p.stream = g.stream),"
            " (SELECT COUNT(*) FROM entries e"
            "   WHERE e.stream = g.stream AND e.id > g.last_delivered_id)"
            " FROM consumer_groups g ORDER BY g.grp, g.stream"
        ).fetchall()
        return [
            GroupLag(
                group=grp,
                stream=stream,
                pending=int(pending),
                oldest_pending_seconds=0.0 if oldest is None else max(0.0, now - oldest),
                lag=int(behind),
            )
            for grp, stream, pending, oldest, behind in rows
        ]

    async def lag(self) -> list[GroupLag]:
        return await self._run(self._lag)

    def _head(self) -> int:
        row = self._conn.execute("SELECT COALESCE(MAX(id), 0) FROM entries").fetchone()
        return int(row[0])

    async def ping(self) -> None:
        await self._run(self._head)

    def _close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()

    async def close(self) -> None:
        await self._watch.close()
        await asyncio.to_thread(self._close)
