"""WAL checkpoints of a SQLite database whose kept writer commits on the event loop's
thread (decision 0046).

The kept writer runs with ``wal_autocheckpoint=0``, so its COMMIT only appends pages
to the WAL. The database checkpoints instead, every ``CHECKPOINT_EVERY`` commits: a
PASSIVE checkpoint on a connection of its own, on a thread, run while the writer's
turn is still held. No commit lands between the checkpoint and the next BEGIN, which
starts the WAL over when every page was copied and no reader still reads the WAL: the
moment SQLite's own auto-checkpoint has, inside COMMIT. (A checkpoint that ran beside
the writer would always find new pages appended behind it, and the WAL would never
start over: it grew to 1.7 GB in a simulated day.) Trying again sooner when a reader
kept pages back (every 10 commits) cost the 5,000-line day a tenth of its speed (75
against 84 lines/s): the next regular checkpoint copies them."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading

# Commits between two checkpoints (SQLite's own default is a checkpoint at 1,000 WAL
# pages; a transaction here writes a few to a few dozen).
CHECKPOINT_EVERY = 100

log = logging.getLogger("tally.db")


class WalCheckpoints:
    def __init__(self, path: str) -> None:
        self.path = path
        self._commits = 0
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._closed = False

    def due(self) -> bool:
        """Counts a commit; whether a checkpoint is due after it."""
        self._commits += 1
        return self._commits % CHECKPOINT_EVERY == 0

    async def run(self) -> None:
        """One PASSIVE checkpoint, on a thread; a failure is logged and the next one
        tries again (a commit never fails for it)."""
        try:
            await asyncio.to_thread(self._checkpoint)
        except sqlite3.Error:
            log.warning("WAL checkpoint of %s failed", self.path, exc_info=True)

    def _checkpoint(self) -> None:
        with self._lock:
            if self._closed:
                return
            if self._conn is None:
                self._conn = sqlite3.connect(
                    self.path, isolation_level=None, check_same_thread=False
                )
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._conn is not None:
                self._conn.close()
                self._conn = None
