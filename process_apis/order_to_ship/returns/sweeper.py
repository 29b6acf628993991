"""The expiry sweeper (decision 0033): a singleton that, every
``TALLY_RMA_SWEEP_SECONDS``, ends the RMAs past their ``expires_at``: an ``authorized``
one (nothing arrived) becomes ``expired`` (its units no longer count as returned, and
the WMS is told it is cancelled); an ``inspected`` one becomes ``closed``. A
``received`` one waits for its inspection (then closes at once)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from process_apis.order_to_ship.returns import repository as repo
from process_apis.order_to_ship.returns.service import commit, locked
from shared.db import Database
from shared.waiting import sleep_or_wake

log = logging.getLogger("tally.orders.returns.sweeper")
ENDS = {"authorized": "expired", "inspected": "closed"}


class ExpirySweeper:
    def __init__(
        self, db: Database, wake: Callable[[], None], *, every: float, batch: int = 100
    ) -> None:
        self.db = db
        self.wake_notifier = wake
        self.every = every
        self.batch = batch
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def once(self) -> int:
        """Ends what is due; returns how many RMAs it ended."""
        now = datetime.now(UTC)
        async with self.db.read() as conn:
            due = await repo.expiring(conn, now, self.batch)
        ended = 0
        for rma_id, _ in due:
            async with self.db.transaction() as tx:
                found = await locked(tx, rma_id)
                if found is None:
                    continue
                working, rma = found
                target = ENDS.get(rma.status)
                if target is None or rma.head.expires_at > now:
                    continue  # moved meanwhile
                rma.move(target)
                await commit(tx, working, rma, f"return_{target}")
                ended += 1
        if ended:
            self.wake_notifier()
        return ended

    async def __call__(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                if await self.once() == self.batch:
                    continue
            except Exception:
                log.exception("sweeping expired RMAs failed")
            await sleep_or_wake(self._wake, self.every)
