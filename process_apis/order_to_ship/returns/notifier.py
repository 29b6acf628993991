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
from shared.queue_sender import QueueSender

log = logging.getLogger("tally.orders.returns.notifier")
# (registration row, None when the WMS took it, or (status to put the row in, error))
Outcome = tuple[Any, tuple[str, str] | None]
R = rma_registrations.c


class WmsRegistrations(QueueSender[Any, Outcome]):
    name = "registering RMAs at the WMS"
    log = log

    def __init__(
        self,
        db: Database,
        wms: Downstream,
        *,
        batch: int = 32,
        every: float = 1.0,
        stale_after: float = 15.0,
    ) -> None:
        super().__init__(batch=batch, every=every, stale_after=stale_after)
        self.db = db
        self.wms = wms

    async def claim(self) -> list[Any]:
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

    async def send(self, row: Any) -> Outcome:
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

    async def record(self, outcomes: list[Outcome]) -> None:
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

    def went_through(self, outcome: Outcome) -> bool:
        """Taken by the WMS, or refused for good (``failed``)."""
        unsent = outcome[1]
        return unsent is None or unsent[0] == "failed"
