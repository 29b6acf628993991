"""The log's SQLite file: its schema and the one migration, write transactions, and
waiting for another process's write lock."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")

ENTRIES = """
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    stream TEXT NOT NULL,
    event_id TEXT NOT NULL,
    type TEXT NOT NULL,
    subject TEXT NOT NULL,
    body BLOB NOT NULL,
    appended_at REAL NOT NULL
)"""

SCHEMA = f"""
{ENTRIES};
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


def is_busy(exc: sqlite3.OperationalError) -> bool:
    """Whether SQLite refused because another connection holds a lock it needs."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in _BUSY


def retrying(fn: Callable[..., T], *args: Any) -> T:
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
            if not is_busy(exc) or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.005)


def parse_entry_id(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"not an entry id of the embedded log: {value!r}") from None


@contextmanager
def writing(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write transaction: the write lock taken at BEGIN (IMMEDIATE)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def migrate_unique_event_id(conn: sqlite3.Connection) -> None:
    """Logs written before replay existed had ``event_id UNIQUE``; rebuild the table
    without it (ids and the autoincrement counter kept)."""
    with writing(conn):
        row = conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'entries'"
        ).fetchone()
        if row is None or "UNIQUE" not in str(row[0]).upper():
            return
        (seq,) = conn.execute(
            "SELECT COALESCE(MAX(seq), 0) FROM sqlite_sequence WHERE name = 'entries'"
        ).fetchone()
        conn.execute("ALTER TABLE entries RENAME TO entries_unique_event_id")
        conn.execute(ENTRIES)
        conn.execute("INSERT INTO entries SELECT * FROM entries_unique_event_id")
        conn.execute("DROP TABLE entries_unique_event_id")
        conn.execute("DELETE FROM sqlite_sequence WHERE name = 'entries'")
        conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('entries', ?)", (seq,))
