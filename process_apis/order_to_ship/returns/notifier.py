"""The WMS hears of every RMA (decision 0033): the registration queue's sender.

An RMA's state is queued in the transaction that changes it (``rma_registrations``:
its creation, a rejection, an expiry), so it survives a crash and a WMS outage. The
notifier, a singleton like the releaser (``flows/releases.py``), claims due rows
(``sending``), sends the RMA's current state with ``PUT
/wms/v1/return-authorizations/{rma_id}`` (creates or replaces: resending is harmless)
and records the answer in one transaction. A claim a crash left behind is retried
after ``stale_after`` seconds. With the WMS unreachable (or its circuit open) the rows
stay queued and the notifier backs off; RMAs keep being authorised meanwhile. A newer
state queued while a send is in flight keeps its row queued, so the newest goes out."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update

from process_apis.order_to_ship.db import rma_registrations
from process_apis.order_to_ship.flows.partners import Refused
from process_apis.order_to_ship.returns import repository as repo
from process_apis.order_to_ship.returns.states import wms_status
from shared.db import Database
from shared.http import Downstream
from shared.problems import ProblemError
from shared.waiting import sleep_or_wake

log = logging.getLogger("tally.orders.returns.notifier")
# (registration row, None when the WMS took it, or (status to put the row in, error))
Outcome = tuple[Any, tuple[str, str] | None]
R = rma_registrations.c


class WmsRegistrations:
    def __init__(
        self,
        db: Database,
        wms: Downstream,
        *,
        batch: int = 32,
        every: float = 1.0,
        stale_after: float = 15.0,
    ) -> None:
        self.db = db
        self.wms = wms
        self.batch = batch
        self.every = every
        self.stale_after = stale_after
        self._wake = asyncio.Event()
        self.backoff = 0.0

    def wake(self) -> None:
        self._wake.set()

    async def _claim(self) -> list[Any]:
        stale = datetime.now(UTC) - timedelta(seconds=self.stale_after)
        async with self.db.read() as conn:
            rows = await repo.due_registrations(conn, stale, self.batch)
        if not rows:
            return []
        claimed = []
        async with self.db.transaction() as tx:
            for row in rows:
                moved = await tx.conn.execute(
                    update(rma_registrations)
                    .where(R.rma_id == row.rma_id, R.status == row.status, R.version == row.version)
                    .values(status="sending", attempts=R.attempts + 1, sent_at=datetime.now(UTC))
                )
                if moved.rowcount == 1:
                    claimed.append(row)
        return claimed

    async def _send(self, row: Any) -> Outcome:
        async with self.db.read() as conn:
            rma = await repo.get(conn, row.rma_id)
        if rma is None:  # pragma: no cover - a registration is written with its RMA
            return row, ("failed", "no such RMA")
        body = {
            "order_id": rma.order_id,
            "lines": [
                {"sku": line.sku, "quantity": line.authorized}
                for line in rma.lines
                if line.authorized > 0
            ],
            "expires_at": rma.expires_at.isoformat(),
            "status": wms_status(rma.status),
        }
        try:
            response = await self.wms.request(
                "PUT", f"/wms/v1/return-authorizations/{rma.rma_id}", json=body
            )
        except ProblemError as exc:  # the WMS cannot take it now: queued again
            return row, ("queued", exc.detail)
        if response.is_success:
            return row, None
        refused = Refused("wms", response)
        if response.status_code in (404, 405):
            # A WMS without return authorisations yet (an older version): kept queued.
            return row, ("queued", str(refused))
        log.error("the WMS refused RMA %s: %s", rma.rma_id, refused)
        return row, ("failed", str(refused))

    async def _record(self, outcomes: list[Outcome]) -> None:
        async with self.db.transaction() as tx:
            for row, unsent in outcomes:
                values: dict[str, Any] = (
                    {"status": "sent", "last_error": None}
                    if unsent is None
                    else {"status": unsent[0], "last_error": unsent[1][:500]}
                )
                # Only the version claimed: a newer one queued meanwhile stays queued.
                await tx.conn.execute(
                    update(rma_registrations)
                    .where(R.rma_id == row.rma_id, R.status == "sending", R.version == row.version)
                    .values(**values)
                )

    async def once(self) -> int:
        """Sends what is due; returns how many went through (or were refused for good)."""
        rows = await self._claim()
        if not rows:
            return 0
        outcomes = await asyncio.gather(*(self._send(row) for row in rows))
        await self._record(list(outcomes))
        through = sum(1 for _, unsent in outcomes if unsent is None or unsent[0] == "failed")
        if through:
            self.backoff = 0.0
        else:
            self.backoff = min(max(self.backoff * 2, 0.5), 10.0)
        return through

    async def __call__(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                sent = await self.once()
            except Exception:
                log.exception("registering RMAs at the WMS failed")
                sent, self.backoff = 0, min(max(self.backoff * 2, 0.5), 10.0)
            if sent and not self.backoff:
                continue  # more may be due
            await sleep_or_wake(self._wake, self.backoff or self.every)
