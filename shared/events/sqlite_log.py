"""The embedded event log: an append-only SQLite table shared by every process on the
machine, with consumer groups, acknowledgements, redelivery of unacked entries, dead
letters and replay (the semantics of shared/events/bus.py, like the Redis engine).

All processes open the same file (WAL mode). Every write runs under SQLite's write lock
(BEGIN IMMEDIATE), so two consumers of one group, in one process or in several, never
take the same entry. An idle consumer only reads (no write lock): the head of its
streams and the earliest delivery time of its group's pending entries, every
``poll_interval``.

Entry ids are the global autoincrement ids (as strings in the interface). An event may
be stored twice (a relay retry, a replayed dead letter); consumers dedup by event id.

With ``max_len``, a publisher trims its stream every ``trim_every`` appends to the newest
``max_len`` entries, but never past the first entry a group has pending or has not been
delivered yet; each stream keeps at most ``max_len`` dead letters (the oldest go).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
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

log = logging.getLogger("tally.bus")

T = TypeVar("T")

_ENTRIES = """
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    stream TEXT NOT NULL,
    event_id TEXT NOT NULL,
    type TEXT NOT NULL,
    subject TEXT NOT NULL,
    body BLOB NOT NULL,
    appended_at REAL NOT NULL
)"""

_SCHEMA = f"""
{_ENTRIES};
CREATE INDEX IF NOT EXISTS entries_by_stream ON entries (stream, id);
CREATE INDEX IF NOT EXISTS entries_by_event_id ON entries (event_id);
CREATE TABLE IF NOT EXISTS consumer_groups (
    grp TEXT NOT NULL,
    stream TEXT NOT NULL,
    last_delivered_id INTEGER NOT NULL,
    PRIMARY KEY (grp, stream)
);
CREATE TABLE IF NOT EXISTS pending (
    grp TEXT NOT NULL,
    stream TEXT NOT NULL,
    entry_id INTEGER NOT NULL,
    consumer TEXT NOT NULL,
    delivered_at REAL NOT NULL,
    deliveries INTEGER NOT NULL,
    PRIMARY KEY (grp, stream, entry_id)
);
CREATE INDEX IF NOT EXISTS pending_by_delivery ON pending (grp, stream, delivered_at);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    stream TEXT NOT NULL,
    grp TEXT NOT NULL,
    entry_id INTEGER NOT NULL,
    body BLOB NOT NULL,
    deliveries INTEGER NOT NULL,
    reason TEXT NOT NULL,
    dead_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_by_stream ON dead_letters (stream, id);
"""


_BUSY = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
_BUSY_WAIT_SECONDS = 30.0


def _retrying(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)``, again while another process holds the write lock: after 0.2 ms,
    doubling to 5 ms, for up to 30 s. (SQLite's own busy handler sleeps 1, 2, 5, 10,
    ... 100 ms between tries: behind another process's sub-millisecond transaction a
    writer often slept tens of ms after the lock was free.) Every operation is one
    transaction or none (a failed BEGIN IMMEDIATE), so running it again is safe."""
    delay, deadline = 0.0002, time.monotonic() + _BUSY_WAIT_SECONDS
    while True:
        try:
            return fn(*args)
        except sqlite3.OperationalError as exc:
            code = getattr(exc, "sqlite_errorcode", None)
            busy = code is not None and code & 0xFF in _BUSY
            if not busy or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.005)


def _entry_id(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"not an entry id of the embedded log: {value!r}") from None


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
        # No SQLite busy handler (timeout=0): _retrying waits for other processes.
        self._conn = sqlite3.connect(
            self.path, timeout=0, isolation_level=None, check_same_thread=False
        )
        _retrying(self._conn.execute, "PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        _retrying(self._migrate_unique_event_id)
        _retrying(self._conn.executescript, _SCHEMA)
        # A threading lock, not an asyncio one: a cancelled caller stops awaiting, but
        # its worker thread keeps using the connection; close() must wait for it.
        self._lock = threading.Lock()
        self._closed = False
        # Per (group, streams): the head last seen when the claim left nothing behind.
        self._last_seen_head: dict[tuple[str, tuple[str, ...]], int] = {}

    # -- plumbing --------------------------------------------------------
    def _locked(self, fn: Callable[..., T], *args: Any) -> T:
        with self._lock:
            if self._closed:
                raise RuntimeError("the event log is closed")
            return _retrying(fn, *args)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(self._locked, fn, *args)

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise

    def _migrate_unique_event_id(self) -> None:
        """Logs written before replay existed had ``event_id UNIQUE``; rebuild the table
        without it (ids and the autoincrement counter kept)."""
        with self._write() as conn:
            row = conn.execute(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'entries'"
            ).fetchone()
            if row is None or "UNIQUE" not in str(row[0]).upper():
                return
            (seq,) = conn.execute(
                "SELECT COALESCE(MAX(seq), 0) FROM sqlite_sequence WHERE name = 'entries'"
            ).fetchone()
            conn.execute("ALTER TABLE entries RENAME TO entries_unique_event_id")
            conn.execute(_ENTRIES)
            conn.execute("INSERT INTO entries SELECT * FROM entries_unique_event_id")
            conn.execute("DROP TABLE entries_unique_event_id")
            conn.execute("DELETE FROM sqlite_sequence WHERE name = 'entries'")
            conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('entries', ?)", (seq,))

    # -- producing -------------------------------------------------------
    def _publish(self, stream: str, events: Sequence[Event]) -> None:
        now = time.time()
        rows = [(stream, e.id, e.type, e.subject, encode_event(e), now) for e in events]
        with self._write() as conn:
            conn.executemany(
                "INSERT INTO entries (stream, event_id, type, subject, body, appended_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )

    async def publish(self, stream: str, events: Sequence[Event]) -> None:
        if not events:
            return
        await self._run(self._publish, stream, list(events))
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
        with self._write() as conn:
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
        self, group: str, consumer: str, streams: Sequence[str], count: int
    ) -> tuple[list[Delivery], bool]:
        """Up to ``count`` entries per stream: expired pending ones first, then new ones.
        Also tells whether some stream filled its share (more may be waiting)."""
        now = time.time()
        expired_before = now - self.visibility_timeout
        out: list[Delivery] = []
        full = False
        with self._write() as conn:
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
                fresh: list[Any] = []
                if room > 0:
                    (last,) = conn.execute(
                        "SELECT last_delivered_id FROM consumer_groups"
                        " WHERE grp = ? AND stream = ?",
                        (group, stream),
                    ).fetchone()
                    fresh = conn.execute(
                        "SELECT id, body FROM entries WHERE stream = ? AND id > ?"
                        " ORDER BY id LIMIT ?",
                        (stream, last, room),
                    ).fetchall()
                if fresh:
                    conn.executemany(
                        "INSERT INTO pending (grp, stream, entry_id, consumer, delivered_at,"
                        " deliveries) VALUES (?, ?, ?, ?, ?, 1)",
                        [(group, stream, entry_id, consumer, now) for entry_id, _ in fresh],
                    )
                    conn.execute(
                        "UPDATE consumer_groups SET last_delivered_id = ?"
                        " WHERE grp = ? AND stream = ?",
                        (fresh[-1][0], group, stream),
                    )
                    out.extend(
                        Delivery(stream, str(entry_id), decode_event(body), 1)
                        for entry_id, body in fresh
                    )
                full = full or len(stuck) + len(fresh) >= count
        return out, full

    async def read_group(
        self, group: str, consumer: str, streams: Sequence[str], count: int, block_ms: int
    ) -> list[Delivery]:
        streams = list(dict.fromkeys(streams))
        if not streams or count <= 0:
            return []
        key = (group, tuple(streams))
        deadline = time.monotonic() + block_ms / 1000
        while True:
            # A read-only look first: an idle consumer never takes the write lock.
            head, earliest = await self._run(self._probe, group, streams)
            reclaim_due = earliest is not None and earliest < time.time() - self.visibility_timeout
            if head != self._last_seen_head.get(key) or reclaim_due:
                deliveries, full = await self._run(self._claim, group, consumer, streams, count)
                if not full:
                    self._last_seen_head[key] = head
                if deliveries:
                    return deliveries
            if time.monotonic() >= deadline:
                return []
            await asyncio.sleep(self.poll_interval)

    def _ack(self, group: str, stream: str, entry_ids: Sequence[int]) -> None:
        with self._write() as conn:
            conn.executemany(
                "DELETE FROM pending WHERE grp = ? AND stream = ? AND entry_id = ?",
                [(group, stream, i) for i in entry_ids],
            )

    async def ack(self, group: str, stream: str, entry_ids: Sequence[str]) -> None:
        if entry_ids:
            await self._run(self._ack, group, stream, [_entry_id(i) for i in entry_ids])

    def _retry_later(self, group: str, stream: str, entry_id: int, delay: float) -> None:
        # Claimable once ``delivered_at`` is older than the timeout: pretend it was
        # delivered ``timeout - delay`` ago.
        redeliver_from = time.time() - self.visibility_timeout + delay
        with self._write() as conn:
            conn.execute(
                "UPDATE pending SET delivered_at = ? WHERE grp = ? AND stream = ? AND entry_id = ?",
                (redeliver_from, group, stream, entry_id),
            )

    async def retry_later(self, group: str, delivery: Delivery, delay_seconds: float) -> None:
        delay = min(max(delay_seconds, 0.0), self.visibility_timeout)
        await self._run(
            self._retry_later, group, delivery.stream, _entry_id(delivery.entry_id), delay
        )

    def _dead_letter(
        self, group: str, stream: str, entry_id: int, body: bytes, deliveries: int, reason: str
    ) -> None:
        with self._write() as conn:
            taken = conn.execute(
                "DELETE FROM pending WHERE grp = ? AND stream = ? AND entry_id = ?",
                (group, stream, entry_id),
            ).rowcount
            if taken:  # not already acked or dead-lettered by another consumer
                conn.execute(
                    "INSERT INTO dead_letters (stream, grp, entry_id, body, deliveries, reason,"
                    " dead_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (stream, group, entry_id, body, deliveries, reason, time.time()),
                )
                if self.max_len is not None:  # bounded: the oldest dead letters go
                    conn.execute(
                        "DELETE FROM dead_letters WHERE stream = ? AND id <= ("
                        " SELECT id FROM dead_letters WHERE stream = ?"
                        " ORDER BY id DESC LIMIT 1 OFFSET ?)",
                        (stream, stream, self.max_len),
                    )

    async def dead_letter(self, group: str, delivery: Delivery, reason: str) -> None:
        await self._run(
            self._dead_letter,
            group,
            delivery.stream,
            _entry_id(delivery.entry_id),
            encode_event(delivery.event),
            delivery.delivery_count,
            reason,
        )

    def _dead_letters(self, stream: str | None, limit: int) -> list[DeadLetter]:
        query = (
            "SELECT id, stream, grp, entry_id, body, deliveries, reason, dead_at FROM dead_letters"
        )
        if stream is None:
            rows = self._conn.execute(f"{query} ORDER BY id LIMIT ?", (limit,)).fetchall()
        else:
            rows = self._conn.execute(
                f"{query} WHERE stream = ? ORDER BY id LIMIT ?", (stream, limit)
            ).fetchall()
        return [
            DeadLetter(
                dead_letter_id=str(dead_id),
                stream=s,
                group=grp,
                entry_id=str(entry_id),
                event=decode_event(body),
                deliveries=int(deliveries),
                reason=reason,
                dead_at=datetime.fromtimestamp(dead_at, UTC),
            )
            for dead_id, s, grp, entry_id, body, deliveries, reason, dead_at in rows
        ]

    async def dead_letters(self, stream: str | None = None, limit: int = 100) -> list[DeadLetter]:
        return await self._run(self._dead_letters, stream, limit)

    def _replay_dead_letter(self, dead_id: int) -> bool:
        with self._write() as conn:
            row = conn.execute(
                "SELECT stream, body FROM dead_letters WHERE id = ?", (dead_id,)
            ).fetchone()
            if row is None:
                return False
            stream, body = row
            event = decode_event(body)
            conn.execute(
                "INSERT INTO entries (stream, event_id, type, subject, body, appended_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (stream, event.id, event.type, event.subject, body, time.time()),
            )
            conn.execute("DELETE FROM dead_letters WHERE id = ?", (dead_id,))
        return True

    async def replay_dead_letter(self, dead_letter_id: str) -> bool:
        try:
            dead_id = int(dead_letter_id)
        except ValueError:
            return False
        return await self._run(self._replay_dead_letter, dead_id)

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
        start = 0 if after is None else _entry_id(after)
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
        await asyncio.to_thread(self._close)
