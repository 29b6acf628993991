"""The startup background job that finishes orders a crash or an outage left ``pending``
for longer than ``after`` seconds, by re-running the saga's idempotent steps."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

from process_apis.order_to_ship.flows.place_order import PlaceOrder
from process_apis.order_to_ship.orders import repository as repo
from shared.refusals import Refusal

log = logging.getLogger("tally.orders.resume")


class ResumeStalled:
    def __init__(self, place: PlaceOrder, *, after: float = 30.0, every: float = 5.0) -> None:
        self.place = place
        self.after = after
        self.every = every

    async def once(self) -> int:
        before = datetime.now(UTC) - timedelta(seconds=self.after)
        async with self.place.db.read() as conn:
            stalled = await repo.stalled(conn, before)
        for order_id in stalled:
            try:
                await self.place.advance(order_id)
                log.info("resumed order %s", order_id)
            except Refusal as exc:
                log.warning("resuming order %s: %s %s", order_id, exc.status_code, exc.detail)
            except Exception:
                log.exception("resuming order %s failed", order_id)
        return len(stalled)

    async def __call__(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.once()
            except Exception:
                log.exception("resuming stalled orders failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.every)
