"""The releaser: sends the queued warehouse releases to the WMS (decision 0026).

A release is queued in the order's own transaction (``order_releases``), so it
survives a crash and a WMS outage; the releaser claims it (``sending``), creates the
fulfillment order with Idempotency-Key ``fo:{release_id}`` and records it with the
lines' ``released`` in one transaction. A claim a crash left behind is retried after
``stale_after`` seconds: the key makes the WMS answer the first fulfillment order
again, so each release goes out exactly once. With the WMS unreachable (or its
circuit open) the releaser waits and retries; orders keep being accepted meanwhile.
The claim, send, record and back-off loop is the queue senders' (``shared/queue_sender.py``)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update

from process_apis.order_to_ship.db import order_releases, orders
from process_apis.order_to_ship.flows import changes
from process_apis.order_to_ship.flows.partners import Partners, Refused
from process_apis.order_to_ship.orders import repository as repo
from shared.db import Database
from shared.problems import ProblemError
from shared.queue_sender import QueueSender

log = logging.getLogger("tally.orders.releases")
# (release row, the fulfillment order it became, or (status to go back to, error))
Outcome = tuple[Any, str | None, tuple[str, str] | None]
R = order_releases.c


class Releaser(QueueSender[Any, Outcome]):
    name = "releasing to the warehouses"
    log = log

    def __init__(
        self,
        db: Database,
        partners: Partners,
        *,
        batch: int = 32,
        every: float = 1.0,
        stale_after: float = 15.0,
    ) -> None:
        super().__init__(batch=batch, every=every, stale_after=stale_after)
        self.db = db
        self.partners = partners

    async def _due(self) -> list[Any]:
        stale = datetime.now(UTC) - timedelta(seconds=self.stale_after)
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(order_releases)
                .join(orders, orders.c.order_id == R.order_id)
                .where(
                    or_(R.status == "queued", and_(R.status == "sending", R.sent_at < stale)),
                    orders.c.status.notin_(("on_hold", "cancelled", "rejected")),
                )
                .order_by(R.created_at, R.release_id)
                .limit(self.batch)
            )
            return list(rows)

    async def claim(self) -> list[Any]:
        """Claims the due releases in one transaction; returns those it claimed."""
        rows = await self._due()
        claimed = []
        async with self.db.transaction() as tx:
            for row in rows:
                moved = await tx.conn.execute(
                    update(order_releases)
                    .where(R.release_id == row.release_id, R.status == row.status)
                    .values(status="sending", attempts=R.attempts + 1, sent_at=datetime.now(UTC))
                )
                if moved.rowcount == 1:
                    claimed.append(row)
        return claimed

    async def send(self, row: Any) -> Outcome:
        """One release to the WMS: (row, fulfillment order id, or the status to put the
        row back in with the error)."""
        try:
            created = await self.partners.create_fulfillment(
                row.release_id, row.order_id, row.warehouse_id, list(row.lines)
            )
        except ProblemError as exc:  # the WMS cannot take it now: queued again
            return row, None, ("queued", exc.detail)
        except Refused as exc:
            log.error("the WMS refused release %s: %s", row.release_id, exc)
            return row, None, ("failed", str(exc))
        return row, str(created["fulfillment_order_id"]), None

    async def record(self, outcomes: list[Outcome]) -> None:
        """What the WMS answered, for the whole batch in one transaction: each sent
        release moves its order's lines (``released``) and status."""
        async with self.db.transaction() as tx:
            for row, fulfillment_order_id, unsent in outcomes:
                values: dict[str, Any] = (
                    {"status": "sent", "fulfillment_order_id": fulfillment_order_id}
                    if unsent is None
                    else {"status": unsent[0], "last_error": unsent[1][:500]}
                )
                moved = await tx.conn.execute(
                    update(order_releases)
                    .where(R.release_id == row.release_id, R.status == "sending")
                    .values(**values)
                )
                if moved.rowcount != 1 or unsent is not None:
                    continue
                working = await repo.lock(tx.conn, row.order_id)
                assert working is not None
                for line in row.lines:
                    working.line(str(line["sku"])).release(int(line["quantity"]))
                await changes.commit(tx, working, "released")

    def went_through(self, outcome: Outcome) -> bool:
        """Sent, or refused for good (``failed``)."""
        unsent = outcome[2]
        return unsent is None or unsent[0] == "failed"
