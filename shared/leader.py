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
    """An exclusive ``flock`` on ``path`` (created if missing), held by this process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        """Takes the lock if nobody holds it; never waits."""
        if self._fd is not None:
            return True
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    async def acquire(self) -> None:
        """Takes the lock, waiting (on a thread, the loop stays free) while another
        process holds it."""
        if self.try_acquire():
            return
        fd = self._open()
        try:
            await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
        except BaseException:
            # Cancelled while the thread waits: the thread may still get the lock on
            # fd; closing fd releases it then.
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _open(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)


async def lead(lock: FileLock, stop: asyncio.Event, retry_seconds: float) -> bool:
    """Waits until this process holds ``lock`` (True) or ``stop`` is set (False)."""
    while not lock.try_acquire():
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=retry_seconds)
        if stop.is_set():
            return False
    return True
