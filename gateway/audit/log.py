"""Records calls off the hot path: ``record`` appends to an in-memory list (no I/O,
no lock), and a background task writes the list to the store in one transaction
every ``flush_seconds`` (0.2 s), in a worker thread so the event loop never waits on
SQLite. On a clean stop the rest is flushed; a ``kill -9`` loses what was recorded
since the last flush (at most ~0.2 s of calls, docs/decisions/0013)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio

from gateway.audit.store import AuditEntry, AuditStore

log = logging.getLogger("tally.gateway.audit")


class AuditLog:
    def __init__(
        self, store: AuditStore, *, flush_seconds: float = 0.2, max_pending: int = 100_000
    ) -> None:
        self.store = store
        self.flush_seconds = flush_seconds
        self.max_pending = max_pending  # beyond this (store down) the oldest are dropped
        self.dropped = 0
        self._pending: list[AuditEntry] = []
        self._task: asyncio.Task[None] | None = None

    def record(self, entry: AuditEntry) -> None:
        self._pending.append(entry)
        if len(self._pending) > self.max_pending:
            overflow = len(self._pending) - self.max_pending
            del self._pending[:overflow]
            self.dropped += overflow

    async def flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        try:
            await anyio.to_thread.run_sync(self.store.insert, batch)
        except Exception as exc:  # keep the batch for the next try; never fail a call
            log.warning("audit: %d entries not written yet: %r", len(batch), exc)
            self._pending[:0] = batch

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.flush_seconds)
            await self.flush()

    @asynccontextmanager
    async def lifespan(self, _app: Any) -> AsyncIterator[None]:
        self._task = asyncio.create_task(self._run(), name="audit-flush")
        try:
            yield
        finally:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            await self.flush()
            if self.dropped:
                log.warning("audit: %d entries were dropped while the store was down", self.dropped)
            await anyio.to_thread.run_sync(self.store.close)
