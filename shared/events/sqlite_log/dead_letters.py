"""The embedded log's dead letters: moving a pending entry there, listing them, and
replaying one onto its stream. Each function runs on the log's connection, on its
worker thread, under its lock (``SqliteEventLog._run``)."""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime

from shared.events.bus import DeadLetter
from shared.events.envelope import decode_event
from shared.events.sqlite_log.storage import writing


def move(
    conn: sqlite3.Connection,
    group: str,
    stream: str,
    entry_id: int,
    body: bytes,
    deliveries: int,
    reason: str,
    max_len: int | None,
) -> None:
    """Takes the entry from the group's pending ones and stores it as a dead letter;
    with ``max_len``, the stream keeps its newest ``max_len`` dead letters."""
    with writing(conn):
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
            if max_len is not None:  # bounded: the oldest dead letters go
                conn.execute(
                    "DELETE FROM dead_letters WHERE stream = ? AND id <= ("
                    " SELECT id FROM dead_letters WHERE stream = ?"
                    " ORDER BY id DESC LIMIT 1 OFFSET ?)",
                    (stream, stream, max_len),
                )


def listed(conn: sqlite3.Connection, stream: str | None, limit: int) -> list[DeadLetter]:
    query = "SELECT id, stream, grp, entry_id, body, deliveries, reason, dead_at FROM dead_letters"
    if stream is None:
        rows = conn.execute(f"{query} ORDER BY id LIMIT ?", (limit,)).fetchall()
    else:
        rows = conn.execute(
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


def replay(conn: sqlite3.Connection, dead_id: int) -> bool:
    """Re-appends the dead letter to its stream and drops it; False if there is none."""
    with writing(conn):
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
