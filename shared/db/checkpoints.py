"""WAL checkpoints of a SQLite database whose kept writer commits on the event loop's
thread (decision 0046).

The kept writer runs with ``wal_autocheckpoint=0``, so its COMMIT only appends pages
to the WAL. The database checkpoints instead, every ``CHECKPOINT_EVERY`` commits (and
every ``RETRY_EVERY`` while the last one could not copy every page): a PASSIVE
checkpoint on a connection of its own, on a thread, run while the writer's turn is
still held. No commit lands between the checkpoint and the next BEGIN, which starts
the WAL over when every page was copied and no reader still reads the WAL: the moment
SQLite's own auto-checkpoint has, inside COMMIT. (A checkpoint that ran beside the
writer would always find new pages appended behind it, and the WAL would never start
over: it grew to 1.7 GB in a simulated day.)"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading

# Commits between two checkpoints (SQLite's own default is a checkpoint at 1,000 WAL
# pages; a transaction here writes a few to a few dozen).
CHECKPOINT_EVERY = 100
# While a reader keeps the last checkpoint from copying every page: commits between tries.
RETRY_EVERY = 100

log = logging.getLogger("tally.db")


class WalCheckpoints:
    def __init__(self, path: str) -> None:
        self.path = path
        self._commits = 0
        self._behind = False
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._closed = False

    def due(self) -> bool:
        """Counts a commit; whether a checkpoint is due after it."""
        self._commits += 1
        every = RETRY_EVERY if self._behind else CHECKPOINT_EVERY
        return self._commits % every == 0

    async def run(self) -> None:
        """One PASSIVE checkpoint, on a thread; a failure is logged and the next one
        tries again (a commit never fails for it)."""
        try:
            copied_all = await asyncio.to_thread(self._checkpoint)
        except sqlite3.Error:
            log.warning("WAL checkpoint of %s failed", self.path, exc_info=True)
            return
        self._behind = not copied_all

    def _checkpoint(self) -> bool:
        with self._lock:
            if self._closed:
                return True
            if self._conn is None:
                self._conn = sqlite3.connect(
                    self.path, isolation_level=None, check_same_thread=False
                )
            _busy, in_wal, copied = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            return bool(copied >= in_wal)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._conn is not None:
                self._conn.close()
                self._conn = None
