"""The releaser: sends the queued warehouse releases to the WMS (decision 0026).

A release is queued in the order's own transaction (``order_releases``), so it
survives a crash and a WMS outage; the releaser claims it (``sending``), creates the
fulfillment order with Idempotency-Key ``fo:{release_id}`` and records it with the
lines' ``released`` in one transaction. A claim a crash left behind is retried after
``stale_after`` seconds: the key makes the WMS answer the first fulfillment order
again, so each release goes out exactly once. With the WMS unreachable (or its
circuit open) the releaser waits and retries; orders keep being accepted meanwhile.
The claim, send, record and back-off loop is the queue senders' (``shared/queue_sender.py``),
except that the claimed releases go in one call (``POST
/wms/v1/fulfillment-orders/batch``, up to 100, each under its own ``fo:{release_id}``
key, so the batch replays what the single create made and the other way round)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import httpx
from sqlalchemy import Update, and_, bindparam, or_, select, update

from process_apis.order_to_ship.db import order_releases, orders
from process_apis.order_to_ship.flows import changes
from process_apis.order_to_ship.flows.partners import Partners, Refused
from process_apis.order_to_ship.lifecycle.lines import QuantityRefused
from process_apis.order_to_ship.orders import repository as repo
from shared.breaker import CircuitOpen
from shared.db import Database, Tx, savepoint
from shared.http import RetryableStatus
from shared.problems import ProblemError
from shared.queue_sender import QueueSender

log = logging.getLogger("tally.orders.releases")
# The most releases the WMS takes in one call.
WMS_BATCH = 100
# (release row, the fulfillment order it became, or (status to go back to, error))
Outcome = tuple[Any, str | None, tuple[str, str] | None]
R = order_releases.c


def maybe_sent(unreachable: ProblemError) -> bool:
    """Whether a call ``Downstream`` gave up on may have reached the service: not when
    the circuit was open, the connection was never made, or the service answered a
    502/503/504 (it did not do the work); otherwise (a timeout or a connection lost
    after the request went out) it may have."""
    cause = unreachable.__cause__
    if isinstance(cause, CircuitOpen | RetryableStatus):
        return False
    return not isinstance(cause, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)


# Built once (decision 0043): a claim and a record run for every release.
# Due: queued, or in flight for longer than ``stale_after`` (its answer was lost).
_IS_DUE = or_(R.status == "queued", and_(R.status == "sending", R.sent_at < bindparam("stale")))
# The due releases read are claimed in one statement: one still due when claimed (not
# claimed by another run meanwhile, not cancelled) moves to ``sending``.
_CLAIM = (
    update(order_releases)
    .where(R.release_id.in_(bindparam("at_releases", expanding=True)), _IS_DUE)
    .values(status="sending", attempts=R.attempts + 1, sent_at=bindparam("now"))
    .returning(*order_releases.c)
)


_DUE = (
    select(order_releases)
    .join(orders, orders.c.order_id == R.order_id)
    .where(_IS_DUE, orders.c.status.notin_(("on_hold", "cancelled", "rejected")))
    .order_by(R.created_at, R.release_id)
    .limit(bindparam("most"))
)


@cache
def _settle_sending(columns: tuple[str, ...]) -> Update:
    """A claimed release's row, once the WMS answered (bind parameters ``new_{column}``)."""
    return (
        update(order_releases)
        .where(R.release_id == bindparam("at_release"), R.status == "sending")
        .values({c: bindparam(f"new_{c}") for c in columns})
    )


class Releaser(QueueSender[Any, Outcome]):
    name = "releasing to the warehouses"
    log = log

    def __init__(
        self,
        db: Database,
        partners: Partners,
        *,
        batch: int = WMS_BATCH,
        every: float = 1.0,
        stale_after: float = 15.0,
    ) -> None:
        super().__init__(batch=batch, every=every, stale_after=stale_after)
        self.db = db
        self.partners = partners

    async def _due(self, stale: datetime) -> list[Any]:
        # A lookup (on the loop, decision 0051): the queue's due rows by the status
        # index, at most a batch; ``read()``'s check-out and driver-thread hand-offs
        # cost more than the rows on a pass woken by every placed order.
        async with self.db.lookup() as conn:
            rows = await conn.execute(_DUE, {"stale": stale, "most": self.batch})
            return list(rows)

    async def claim(self) -> list[Any]:
        """Claims the due releases in one statement; returns those it claimed, as
        claimed (a cancel may have shrunk one since it was read), oldest first."""
        now = datetime.now(UTC)
        stale = now - timedelta(seconds=self.stale_after)
        rows = await self._due(stale)
        if not rows:
            return []
        async with self.db.transaction() as tx:
            moved = await tx.conn.execute(
                _CLAIM,
                {"at_releases": [row.release_id for row in rows], "stale": stale, "now": now},
            )
            claimed = list(moved)
        return sorted(claimed, key=lambda row: (row.created_at, row.release_id))

    async def once(self) -> int:
        """The queue senders' turn (``QueueSender.once``), with the claimed releases
        sent in batch calls rather than one call each."""
        rows = await self.claim()
        if not rows:
            return 0
        outcomes: list[Outcome] = []
        for start in range(0, len(rows), WMS_BATCH):
            outcomes += await self.send_batch(rows[start : start + WMS_BATCH])
        await self.record(outcomes)
        through = sum(1 for outcome in outcomes if self.went_through(outcome))
        self.backoff = 0.0 if through else self._backed_off()
        return through

    async def send(self, row: Any) -> Outcome:
        """One release to the WMS (a batch of one)."""
        (outcome,) = await self.send_batch([row])
        return outcome

    async def send_batch(self, rows: list[Any]) -> list[Outcome]:
        """Up to 100 releases in one call to the WMS: per row, (row, fulfillment order
        id, or the status to put the row back in with the error). The WMS away (or
        failing, 5xx): all queued again. The batch refused as a whole (4xx: one release
        the WMS cannot read) goes again one release per call, so that only that one
        waits; a single release refused so has ``failed``."""
        try:
            results = await self.partners.create_fulfillments(
                [(row.release_id, row.order_id, row.warehouse_id, list(row.lines)) for row in rows]
            )
        except ProblemError as exc:
            if maybe_sent(exc):
                # The call went out and its answer was lost (a timeout, a dropped
                # connection): the WMS may hold the fulfillment orders. The releases stay
                # in flight (a cancel waits, 409), and go again with the same keys once
                # their claim is stale; the WMS answers what it made.
                log.warning("the answer to %d releases was lost: %s", len(rows), exc.detail)
                return [(row, None, ("sending", "the answer was lost")) for row in rows]
            return [(row, None, ("queued", exc.detail)) for row in rows]  # nothing went out
        except Refused as exc:
            if exc.status_code >= 500:
                log.warning("the WMS failed a batch of %d releases: %s", len(rows), exc)
                return [(row, None, ("queued", str(exc))) for row in rows]
            if len(rows) == 1:
                log.error("the WMS refused release %s: %s", rows[0].release_id, exc)
                return [(rows[0], None, ("failed", str(exc)))]
            return await self._one_by_one(rows)
        return [self._outcome(row, results.get(row.release_id)) for row in rows]

    async def _one_by_one(self, rows: list[Any]) -> list[Outcome]:
        """Each release in a batch of its own; once the WMS is away, the rest wait."""
        outcomes: list[Outcome] = []
        for row in rows:
            if outcomes and outcomes[-1][2] is not None and outcomes[-1][2][0] == "queued":
                outcomes.append((row, None, outcomes[-1][2]))
                continue
            outcomes += await self.send_batch([row])
        return outcomes

    @staticmethod
    def _outcome(row: Any, result: dict[str, Any] | None) -> Outcome:
        """What the WMS answered for one release of a batch."""
        if result is None:  # not answered: sent again
            return row, None, ("queued", "the WMS did not answer this release")
        made = result.get("fulfillment_order")
        if made is not None:
            return row, str(made["fulfillment_order_id"]), None
        refusal = result.get("refusal") or {}
        why = f"wms: {refusal.get('status')} {refusal.get('type')} {refusal.get('detail')}"
        if refusal.get("type") == "/problems/request-in-progress":
            return row, None, ("queued", why)  # the same key still runs there
        log.error("the WMS refused release %s: %s", row.release_id, why)
        return row, None, ("failed", why)

    async def record(self, outcomes: list[Outcome]) -> None:
        """What the WMS answered, for the whole batch in one transaction: each sent
        release moves its order's lines (``released``) and status. A release that no
        longer fits its order (``QuantityRefused``) must not keep the batch's others
        from being recorded: the batch is then recorded again with each release in a
        savepoint (taken only then: decision 0059), that one marked ``failed``."""
        # In order id order, as the ERP sync records its batch (no deadlock).
        ordered = sorted(
            outcomes, key=lambda outcome: (str(outcome[0].order_id), outcome[0].release_id)
        )
        try:
            async with self.db.transaction() as tx:
                await self._load_orders(tx, ordered)
                for row, fulfillment_order_id, unsent in ordered:
                    await self._record_one(tx, row, _values(fulfillment_order_id, unsent))
        except QuantityRefused:
            await self._record_guarded(ordered)

    async def _record_guarded(self, ordered: list[Outcome]) -> None:
        async with self.db.transaction() as tx:
            await self._load_orders(tx, ordered)
            for row, fulfillment_order_id, unsent in ordered:
                try:
                    async with savepoint(tx.conn):
                        await self._record_one(tx, row, _values(fulfillment_order_id, unsent))
                except QuantityRefused as exc:
                    log.error(
                        "release %s of order %s no longer fits it: %s",
                        row.release_id,
                        row.order_id,
                        exc,
                    )
                    await tx.conn.execute(
                        update(order_releases)
                        .where(R.release_id == row.release_id, R.status == "sending")
                        .values(status="failed", last_error=f"does not fit: {exc}"[:500])
                    )

    @staticmethod
    async def _load_orders(tx: Tx, ordered: list[Outcome]) -> None:
        """The orders of the sent releases, locked and loaded in two statements."""
        await repo.lock_many(
            tx, [str(row.order_id) for row, _, unsent in ordered if unsent is None]
        )

    async def _record_one(self, tx: Tx, row: Any, values: dict[str, Any]) -> None:
        moved = await tx.conn.execute(
            _settle_sending(tuple(sorted(values))),
            {"at_release": row.release_id, **{f"new_{c}": v for c, v in values.items()}},
        )
        if moved.rowcount != 1 or values["status"] != "sent":
            return
        working = await repo.lock(tx, row.order_id)
        assert working is not None
        for line in row.lines:
            working.line(str(line["sku"])).release(int(line["quantity"]))
        await changes.commit(tx, working, "released")

    def went_through(self, outcome: Outcome) -> bool:
        """Sent, or refused for good (``failed``)."""
        unsent = outcome[2]
        return unsent is None or unsent[0] == "failed"


def _values(fulfillment_order_id: str | None, unsent: tuple[str, str] | None) -> dict[str, Any]:
    """The release row's new values: sent (with its fulfillment order), or not."""
    if unsent is None:
        return {"status": "sent", "fulfillment_order_id": fulfillment_order_id}
    return {"status": unsent[0], "last_error": unsent[1][:500]}
