"""The startup background job that finishes orders a crash or an outage left ``pending``
for longer than ``after`` seconds, by re-running the saga's idempotent steps."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

from process_apis.order_to_ship.flows.place_order import PlaceOrder
from process_apis.order_to_ship.flows.together import Outcome, advance_together
from process_apis.order_to_ship.orders import reads
from shared.refusals import Refusal

log = logging.getLogger("tally.orders.resume")


# Orders finished together in one pass (availability takes 100 allocations a call).
STALLED_AT_ONCE = 100


class ResumeStalled:
    def __init__(self, place: PlaceOrder, *, after: float = 30.0, every: float = 5.0) -> None:
        self.place = place
        self.after = after
        self.every = every

    async def once(self) -> int:
        """Finishes the orders pending for longer than ``after``, a hundred at a time
        together (one allocation call, one settle: an outage leaves hundreds); returns
        how many it finished (settled or abandoned)."""
        before = datetime.now(UTC) - timedelta(seconds=self.after)
        async with self.place.db.read() as conn:
            stalled = await reads.stalled(conn, before, STALLED_AT_ONCE)
        settled: dict[str, Outcome] = {}
        try:
            await advance_together(self.place, stalled, settled)
        except Refusal as exc:
            log.warning("resuming %d orders: %s %s", len(stalled), exc.status_code, exc.detail)
        for order_id, outcome in settled.items():
            if isinstance(outcome, Refusal):
                log.warning("resuming order %s: %s %s", order_id, outcome.status, outcome.detail)
            else:
                log.info("resumed order %s", order_id)
        return len(settled)

    async def __call__(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                if await self.once() >= STALLED_AT_ONCE:
                    continue  # a backlog after an outage: the next hundred at once
            except Exception:
                log.exception("resuming stalled orders failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.every)
