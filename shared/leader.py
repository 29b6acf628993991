"""Cross-process locks of one host: the SQLite writer's turn and a service's leader
(decision 0018).

A service may run several worker processes (``tally serve --workers``). They share its
database and its event log; all of them serve HTTP and publish what they commit, but
the work that must happen once per service (consuming its streams, its scheduled
jobs, the outbox relay's passes over the table) runs in one of them: the worker holding
the service's leader lock. An OS file lock (``flock``) is released by the kernel when
its holder dies, however it dies, so another worker takes the lead within a retry
interval and nothing is left locked by a killed process."""

from __future__ import annotations

import asyncio
import fcntl
import os
from contextlib import suppress
from pathlib import Path


class FileLock:
    """An exclusive ``flock`` on ``path`` (created if missing), held by this process.
    The file stays open between turns: a turn costs two system calls."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self.held = False

    def try_acquire(self) -> bool:
        """Takes the lock if nobody holds it; never waits."""
        if self.held:
            return True
        try:
            fcntl.flock(self._file(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        self.held = True
        return True

    async def acquire(self) -> None:
        """Takes the lock, waiting (on a thread, the loop stays free) while another
        process holds it."""
        if self.try_acquire():
            return
        fd = self._file()
        try:
            await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
        except BaseException:
            # Cancelled while the thread waits: the thread may still get the lock;
            # closing the file releases it whenever it does.
            self._fd = None
            os.close(fd)
            raise
        self.held = True

    def release(self) -> None:
        if self.held and self._fd is not None:
            self.held = False
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        fd, self._fd, self.held = self._fd, None, False
        if fd is not None:
            os.close(fd)  # releases the lock if held

    def _file(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
        return self._fd


async def lead(lock: FileLock, stop: asyncio.Event, retry_seconds: float) -> bool:
    """Waits until this process holds ``lock`` (True) or ``stop`` is set (False)."""
    while not lock.try_acquire():
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=retry_seconds)
        if stop.is_set():
            return False
    return True
