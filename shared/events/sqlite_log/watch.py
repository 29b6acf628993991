"""``HeadWatch``: one look at the embedded log per tick for all of a process's idle
consumers (decision 0064).

An idle consumer used to look at the log itself every ``poll_interval`` (the heads of
its streams, its group's pending entries): a service with ten consumer groups made a
thousand looks a second doing nothing. Now a consumer that found nothing waits here;
one task per log looks for all of them, and wakes only those whose streams grew.

Each tick it asks SQLite first whether any other connection committed to the file
since the last tick (``PRAGMA data_version``, a read of the WAL index, no table); only
then, or after a write through this process's own connection (which that counter does
not count), does it read the heads of the waiting consumers' streams (one index seek
each). A consumer registering forces that read on the next tick, so an entry appended
between its own look and its registration still wakes it. A consumer waits at most
until its read's block time or its group's earliest pending entry falls due, then looks
itself, as before; the watch only decides when it looks again sooner."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

# A look run on the log's connection: on the caller's thread when the connection is
# free, else in a worker thread (``SqliteEventLog._at_once`` / ``_run``).
Look = Callable[..., Awaitable[Any]]


class _Waiter:
    __slots__ = ("seen", "streams", "woken")

    def __init__(
        self, streams: tuple[str, ...], seen: int | None, woken: asyncio.Future[None]
    ) -> None:
        self.streams = streams
        self.seen = seen
        self.woken = woken

    def wake(self) -> None:
        if not self.woken.done():
            self.woken.set_result(None)


class HeadWatch:
    def __init__(
        self,
        look: Look,
        data_version: Callable[[], int],
        heads: Callable[[Sequence[str]], dict[str, int]],
        interval: float,
    ) -> None:
        self._look = look
        self._data_version = data_version
        self._heads = heads
        self.interval = interval
        self._waiters: set[_Waiter] = set()
        self._task: asyncio.Task[None] | None = None
        self._version: int | None = None
        self._stale = True  # the heads must be read on the next tick

    def wrote(self) -> None:
        """This process wrote to the log through its own connection (SQLite's
        ``data_version`` counts only the other connections' commits)."""
        self._stale = True

    async def wait(self, streams: Sequence[str], seen: int | None, at_most: float) -> None:
        """Until the newest entry of ``streams`` is no longer ``seen``, or ``at_most``
        seconds; never longer."""
        if at_most <= 0:
            return
        loop = asyncio.get_running_loop()
        task = self._task
        if task is not None and not task.done() and task.get_loop() is not loop:
            # The log is used from a second event loop (tests): that loop's consumers
            # look on their own, as every consumer once did.
            await asyncio.sleep(min(self.interval, at_most))
            return
        waiter = _Waiter(tuple(streams), seen, loop.create_future())
        self._waiters.add(waiter)
        self._stale = True
        if task is None or task.done():
            self._task = loop.create_task(self._watch())
        timer = loop.call_later(at_most, waiter.wake)
        try:
            await waiter.woken
        finally:
            timer.cancel()
            self._waiters.discard(waiter)

    async def _watch(self) -> None:
        try:
            while self._waiters:
                await asyncio.sleep(self.interval)
                if self._waiters:
                    await self._tick()
        except Exception:
            # The log closed or failed: every waiter looks itself, and meets the error.
            for waiter in list(self._waiters):
                waiter.wake()

    async def _tick(self) -> None:
        version = await self._look(self._data_version)
        if version == self._version and not self._stale:
            return
        self._version, self._stale = version, False
        waiting = list(self._waiters)
        streams = sorted({stream for waiter in waiting for stream in waiter.streams})
        heads = await self._look(self._heads, streams)
        for waiter in waiting:
            if max(heads.get(stream, 0) for stream in waiter.streams) != waiter.seen:
                waiter.wake()

    async def close(self) -> None:
        task, self._task = self._task, None
        for waiter in list(self._waiters):
            waiter.wake()
        if task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
