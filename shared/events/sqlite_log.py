"""The embedded event log: an append-only SQLite table shared by every process on the
machine, with consumer groups, acknowledgements and redelivery of unacked entries.

All processes open the same file; each claim runs under SQLite's write lock
(BEGIN IMMEDIATE), so two consumers of one group never take the same entry.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from shared.events.bus import Delivery
from shared.events.envelope import Event, decode_event, encode_event

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    stream TEXT NOT NULL,
    event_id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    subject TEXT NOT NULL,
    body BLOB NOT NULL,
    appended_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_by_stream ON entries (stream, id);
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
"""


class SqliteEventLog:
    def __init__(
        self,
        path: str | Path,
        *,
        visibility_timeout: float = 30.0,
        poll_interval: float = 0.01,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.visibility_timeout = visibility_timeout
        self.poll_interval = poll_interval
        self._conn = sqlite3.connect(
            self.path, timeout=30, isolation_level=None, check_same_thread=False
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)
        # A threading lock, not an asyncio one: a cancelled caller stops awaiting, but
        # its worker thread keeps using the connection; close() must wait for it.
        self._lock = threading.Lock()
        self._closed = False
        # Per group: the head last seen with nothing left to claim, and the last reclaim.
        self._last_seen_max: dict[str, int] = {}
        self._last_reclaim_check: dict[str, float] = {}

    def _locked(self, fn: Callable[..., T], *args: Any) -> T:
        with self._lock:
            if self._closed:
                raise RuntimeError("the event log is closed")
            return fn(*args)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(self._locked, fn, *args)

    # -- producing -------------------------------------------------------
    def _publish(self, stream: str, events: Sequence[Event]) -> None:
        now = time.time()
        rows = [(stream, e.id, e.type, e.subject, encode_event(e), now) for e in events]
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.executemany(
                "INSERT OR IGNORE INTO entries (stream, event_id, type, subject, body, appended_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise

    async def publish(self, stream: str, events: Sequence[Event]) -> None:
        if events:
            await self._run(self._publish, stream, list(events))

    # -- consuming -------------------------------------------------------
    def _max_id(self) -> int:
        row = self._conn.execute("SELECT COALESCE(MAX(id), 0) FROM entries").fetchone()
        return int(row[0])

    def _claim(
        self, group: str, consumer: str, streams: Sequence[str], count: int
    ) -> list[Delivery]:
        now = time.time()
        expired_before = now - self.visibility_timeout
        out: list[Delivery] = []
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            for stream in streams:
                self._conn.execute(
                    "INSERT OR IGNORE INTO consumer_groups (grp, stream, last_delivered_id)"
                    " VALUES (?, ?, 0)",
                    (group, stream),
                )
                stuck = self._conn.execute(
                    "SELECT p.entry_id, p.deliveries, e.body FROM pending p"
                    " JOIN entries e ON e.id = p.entry_id"
                    " WHERE p.grp = ? AND p.stream = ? AND p.delivered_at < ?"
                    " ORDER BY p.entry_id LIMIT ?",
                    (group, stream, expired_before, count),
                ).fetchall()
                for entry_id, deliveries, body in stuck:
                    self._conn.execute(
                        "UPDATE pending SET consumer = ?, delivered_at = ?, deliveries = ?"
                        " WHERE grp = ? AND stream = ? AND entry_id = ?",
                        (consumer, now, deliveries + 1, group, stream, entry_id),
                    )
                    out.append(Delivery(stream, str(entry_id), decode_event(body), deliveries + 1))
                (last,) = self._conn.execute(
                    "SELECT last_delivered_id FROM consumer_groups WHERE grp = ? AND stream = ?",
                    (group, stream),
                ).fetchone()
                fresh = self._conn.execute(
                    "SELECT id, body FROM entries WHERE stream = ? AND id > ? ORDER BY id LIMIT ?",
                    (stream, last, count),
                ).fetchall()
                if fresh:
                    self._conn.executemany(
                        "INSERT INTO pending (grp, stream, entry_id, consumer, delivered_at,"
                        " deliveries) VALUES (?, ?, ?, ?, ?, 1)",
                        [(group, stream, entry_id, consumer, now) for entry_id, _ in fresh],
                    )
                    self._conn.execute(
                        "UPDATE consumer_groups SET last_delivered_id = ?"
                        " WHERE grp = ? AND stream = ?",
                        (fresh[-1][0], group, stream),
                    )
                    out.extend(
                        Delivery(stream, str(entry_id), decode_event(body), 1)
                        for entry_id, body in fresh
                    )
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        return out

    async def read_group(
        self, group: str, consumer: str, streams: Sequence[str], count: int, block_ms: int
    ) -> list[Delivery]:
        deadline = time.monotonic() + block_ms / 1000
        while True:
            # A lock-free look at the head first: an idle consumer never takes the write lock.
            head = await self._run(self._max_id)
            now = time.monotonic()
            last_check = self._last_reclaim_check.get(group, 0.0)
            reclaim_due = now - last_check >= self.visibility_timeout / 3
            if head != self._last_seen_max.get(group, -1) or reclaim_due:
                deliveries = await self._run(self._claim, group, consumer, list(streams), count)
                if reclaim_due:
                    self._last_reclaim_check[group] = now
                if len(deliveries) < count:
                    self._last_seen_max[group] = head
                if deliveries:
                    return deliveries
            if time.monotonic() >= deadline:
                return []
            await asyncio.sleep(self.poll_interval)

    def _ack(self, group: str, stream: str, entry_ids: Sequence[str]) -> None:
        self._conn.executemany(
            "DELETE FROM pending WHERE grp = ? AND stream = ? AND entry_id = ?",
            [(group, stream, int(i)) for i in entry_ids],
        )

    async def ack(self, group: str, stream: str, entry_ids: Sequence[str]) -> None:
        if entry_ids:
            await self._run(self._ack, group, stream, list(entry_ids))

    # -- operating -------------------------------------------------------
    def _read_all(self, stream: str | None, after: int, limit: int) -> list[tuple[int, str, Event]]:
        if stream:
            rows = self._conn.execute(
                "SELECT id, stream, body FROM entries WHERE stream = ? AND id > ? ORDER BY id LIMIT ?",
                (stream, after, limit),
            ).fetchall()
        else:
            rows = self._conn.execute(
                "SELECT id, stream, body FROM entries WHERE id > ? ORDER BY id LIMIT ?",
                (after, limit),
            ).fetchall()
        return [(int(i), s, decode_event(b)) for i, s, b in rows]

    async def read_all(
        self, stream: str | None = None, after: int = 0, limit: int = 100
    ) -> list[tuple[int, str, Event]]:
        return list(await self._run(self._read_all, stream, after, limit))

    async def ping(self) -> None:
        await self._run(self._max_id)

    def _close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()

    async def close(self) -> None:
        await asyncio.to_thread(self._close)
