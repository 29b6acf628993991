"""The ERP hears of every order (decision 0026): the sales-order sync.

Each committed change marks the order (``erp_sync_wanted``); this job sends the
order's whole state to ``PUT /erp/v1/sales-orders/{order_id}`` with its version (the
ERP ignores a version it has seen, so resending is harmless and order does not
matter), then records the synced version. The ERP's credit exposure counts open
orders from these; until an order is synced, acceptance adds it itself
(``repository.unsynced_open_value``)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, delete, select, update

from process_apis.order_to_ship.db import erp_sync_wanted, order_lines, orders
from process_apis.order_to_ship.flows.partners import Partners, Refused
from shared.db import Database
from shared.problems import ProblemError
from shared.waiting import sleep_or_wake

_MARK_SYNCED = (
    update(orders)
    .where(orders.c.order_id == bindparam("at_order"))
    .values(erp_synced_version=bindparam("synced"))
)

# The oldest marks first, then their orders by key. Joined the other way round, SQLite
# scanned every order on each pass (a quarter second): 1% of this service's time at
# 30,000 lines, 5.5% at 250,000 (stop 37).
_OLDEST_MARKS = (
    select(erp_sync_wanted.c.order_id, erp_sync_wanted.c.since)
    .order_by(erp_sync_wanted.c.since)
    .limit(bindparam("most"))
    .subquery("oldest")
)
_WANTED = (
    select(orders)
    .join(_OLDEST_MARKS, _OLDEST_MARKS.c.order_id == orders.c.order_id)
    .where(orders.c.status != "pending")
    .order_by(_OLDEST_MARKS.c.since)
)
_LINES_OF = (
    select(order_lines)
    .where(order_lines.c.order_id.in_(bindparam("ids", expanding=True)))
    .order_by(order_lines.c.line_no)
)

log = logging.getLogger("tally.orders.erp_sync")
ERP_STATUS = {"cancelled": "cancelled", "rejected": "cancelled", "completed": "closed"}


def erp_status(status: str) -> str:
    """The sales order's status in the ERP for an order's status."""
    return ERP_STATUS.get(status, "open")


class ErpSync:
    """Sales orders to the ERP in batches, a pass every ``every`` seconds (at once while
    a full batch waits). A quarter second: the warehouse can post a shipment's goods
    issue within a second of the order's release, and billing's invoice waits (a park,
    a call and a redelivery) for an order the ERP has not booked; with 1 s, a quarter
    of a simulated day's shipments waited so (0.12-0.17 parks per order line)."""

    def __init__(
        self, db: Database, partners: Partners, *, batch: int = 100, every: float = 0.25
    ) -> None:
        self.db = db
        self.partners = partners
        self.batch = batch
        self.every = every
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def _due(self) -> list[tuple[Any, list[Any]]]:
        # A lookup: the orders waiting (a small table, drained every pass) and their
        # lines by key, at most a batch (as the releaser's due releases).
        async with self.db.lookup() as conn:
            heads = list(await conn.execute(_WANTED, {"most": self.batch}))
            ids = [head.order_id for head in heads]
            lines: dict[str, list[Any]] = {i: [] for i in ids}
            for row in await conn.execute(_LINES_OF, {"ids": ids}):
                lines[row.order_id].append(row)
        return [(head, lines[head.order_id]) for head in heads]

    @staticmethod
    def body(head: Any, lines: list[Any]) -> dict[str, Any]:
        """The sales order as the ERP books it: the order's whole state at its version."""
        return {
            "order_id": head.order_id,
            "customer_id": head.customer_id,
            "currency": head.currency,
            "version": int(head.version),
            "status": erp_status(head.status),
            "lines": [
                {
                    "sku": line.sku,
                    "quantity": int(line.quantity),
                    "cancelled": int(line.cancelled),
                    "unit_price_minor": int(line.unit_price_minor),
                }
                for line in lines
            ],
        }

    async def _synced(self, heads: list[Any]) -> None:
        """Records each order's synced version; its mark goes unless it changed since."""
        async with self.db.transaction() as tx:
            # In order id order, as the releaser records its batch: two transactions
            # that lock the same orders in the same order never deadlock (PostgreSQL).
            await tx.conn.execute(
                _MARK_SYNCED,
                [
                    {"at_order": head.order_id, "synced": int(head.version)}
                    for head in sorted(heads, key=lambda h: str(h.order_id))
                ],
            )
            versions = dict(
                (
                    await tx.conn.execute(
                        select(orders.c.order_id, orders.c.version).where(
                            orders.c.order_id.in_([head.order_id for head in heads])
                        )
                    )
                ).all()
            )
            done = [head.order_id for head in heads if versions.get(head.order_id) == head.version]
            if done:
                await tx.conn.execute(
                    delete(erp_sync_wanted).where(erp_sync_wanted.c.order_id.in_(done))
                )

    async def once(self) -> int:
        """Sends the due orders in one batch call and records them in one transaction."""
        due = await self._due()
        if not due:
            return 0
        refused = await self._book([self.body(head, lines) for head, lines in due])
        booked = [head for head, _ in due if refused.get(head.order_id, "missing") is None]
        if booked:
            await self._synced(booked)
        for head, _ in due:
            why = refused.get(head.order_id, "not answered")
            if why is not None:
                # The ERP refuses this one (a bug to look at): it goes to the back of
                # the queue, so it never holds up the others.
                log.error("the ERP refused sales order %s: %s", head.order_id, why)
                await self._requeue(head.order_id)
        return len(due)

    async def _book(self, bodies: list[dict[str, Any]]) -> dict[str, str | None]:
        """Per order id, None when booked, else why the ERP refused it. When the batch as
        a whole is refused (one order the ERP cannot read), the orders go one by one, so
        that only that one waits; an ERP failing (5xx) is raised, to retry later."""
        try:
            return await self.partners.put_sales_orders(bodies)
        except Refused as exc:
            if exc.status_code >= 500:
                raise
            if len(bodies) == 1:
                return {bodies[0]["order_id"]: str(exc)}
        refused: dict[str, str | None] = {}
        for body in bodies:
            refused |= await self._book([body])
        return refused

    async def _requeue(self, order_id: str) -> None:
        async with self.db.transaction() as tx:
            await tx.conn.execute(
                update(erp_sync_wanted)
                .where(erp_sync_wanted.c.order_id == order_id)
                .values(since=datetime.now(UTC))
            )

    async def __call__(self, stop: asyncio.Event) -> None:
        backoff = 0.0
        while not stop.is_set():
            try:
                if await self.once() == self.batch:
                    continue
                backoff = 0.0
            except (ProblemError, Refused) as exc:
                log.warning("syncing sales orders to the ERP: %s", exc)
                backoff = min(max(backoff * 2, 0.5), 10.0)
            except Exception:
                log.exception("syncing sales orders to the ERP failed")
                backoff = min(max(backoff * 2, 0.5), 10.0)
            await sleep_or_wake(self._wake, backoff or self.every)
