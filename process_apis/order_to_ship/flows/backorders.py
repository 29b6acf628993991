"""Backorders that fill by themselves (decision 0026).

Availability says when available-to-promise of skus rose (``inventory.replenished``:
a receipt, a restock, a positive adjustment, another order's cancellation); the
consumer records those skus (``backorder_triggers``, coalesced) and wakes the filler.
The filler takes the waiting lines of each sku oldest order first and asks
availability to fill each order's backorders under the order's policy, with
Idempotency-Key ``fill:{order_id}:{fill_count}`` (a fill that crashed before it was
recorded here replays instead of allocating twice). What was filled is queued for the
warehouses like any release, and the order moves on."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, select, update

from process_apis.order_to_ship.db import backorder_triggers, order_lines, orders
from process_apis.order_to_ship.flows import changes
from process_apis.order_to_ship.flows.cancel_order import cancellations_open
from process_apis.order_to_ship.flows.partners import Partners, Refused
from process_apis.order_to_ship.flows.releases import maybe_sent
from process_apis.order_to_ship.lifecycle.lines import QuantityRefused
from process_apis.order_to_ship.orders import repository as repo
from shared.db import Database, Tx
from shared.events.catalog import InventoryReplenished
from shared.events.envelope import Event
from shared.events.inbox import ApplyOnly, EventHandler
from shared.problems import ProblemError
from shared.waiting import sleep_or_wake

log = logging.getLogger("tally.orders.backorders")
# Orders whose backorders may fill: placed, not held by credit, not ended.
FILLABLE = ("accepted", "backordered", "partially_allocated", "released", "partially_shipped")
_THESE_ORDERS = orders.c.order_id.in_(bindparam("at", expanding=True))
_LOCK_ASKED = (
    select(orders.c.order_id, orders.c.status, orders.c.fill_count, orders.c.ship_to)
    .where(_THESE_ORDERS)
    .order_by(orders.c.order_id)
    .with_for_update()
)
_MARK_ASKED = update(orders).where(_THESE_ORDERS).values(fill_asked_at=bindparam("asked"))
_UNMARK_ASKED = update(orders).where(_THESE_ORDERS).values(fill_asked_at=None)
# How long an asked fill may go unanswered before a sweep asks again with its key.
ASKED_STALE_SECONDS = 30.0
_TRIGGER_DONE = delete(backorder_triggers).where(
    backorder_triggers.c.sku == bindparam("at_sku"),
    backorder_triggers.c.raised_at == bindparam("at_raised"),
)
# The most fills asked of availability in one call.
FILLS_PER_CALL = 100
_NEXT_FILL = (
    update(orders)
    .where(orders.c.order_id == bindparam("at_order"))
    .values(fill_count=bindparam("next"))
)


async def trigger(tx: Tx, skus: list[str]) -> None:
    now = datetime.now(UTC)
    for sku in sorted(set(skus)):
        await tx.conn.execute(
            changes.upsert(tx, backorder_triggers)
            .values(sku=sku, raised_at=now)
            .on_conflict_do_update(index_elements=["sku"], set_={"raised_at": now})
        )


class BackorderFiller:
    def __init__(
        self, db: Database, partners: Partners, releaser: Any, *, every: float = 10.0
    ) -> None:
        self.db = db
        self.partners = partners
        self.releaser = releaser
        self.every = every
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    def handlers(self) -> dict[str, EventHandler]:
        async def on_replenished(tx: Tx, event: Event) -> None:
            replenished = event.payload(InventoryReplenished)
            await trigger(tx, replenished.skus)
            self.wake()  # the filler pauses a moment before it reads: this commits first

        return {"inventory.replenished": ApplyOnly(on_replenished)}

    async def _triggered(self) -> list[Any]:
        async with self.db.read() as conn:
            return list(
                await conn.execute(
                    select(backorder_triggers).order_by(backorder_triggers.c.raised_at)
                )
            )

    async def _waiting(self, sku: str, limit: int = 200) -> list[tuple[str, int]]:
        """Orders with backordered units of ``sku``, oldest first, with those units."""
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(orders.c.order_id, order_lines.c.backordered)
                .join(order_lines, order_lines.c.order_id == orders.c.order_id)
                .where(
                    order_lines.c.sku == sku,
                    order_lines.c.backordered > 0,
                    orders.c.status.in_(FILLABLE),
                )
                .order_by(orders.c.created_at, orders.c.order_id)
                .limit(limit)
            )
            return [(row.order_id, int(row.backordered)) for row in rows]

    async def fill_sku(self, sku: str, available: int) -> int:
        """Fills the orders waiting for ``sku``, oldest first, asking only as many as
        the units it has available can serve (decision 0065): first the oldest orders
        whose waiting units cover them; while units are left (an order took fewer: its
        policy, its region, its cancellation), the next ones, at least twice as many
        each call, up to the 200 oldest. Returns how many orders filled."""
        waiting = await self._waiting(sku)
        filled = at = 0
        left = available
        least = 1
        while at < len(waiting) and left > 0:
            asked: list[str] = []
            wanted = 0
            while (
                at < len(waiting)
                and len(asked) < FILLS_PER_CALL
                and (wanted < left or len(asked) < least)
            ):
                order_id, units = waiting[at]
                asked.append(order_id)
                wanted += units
                at += 1
            orders_filled, units_filled = await self.fill_orders(asked, sku)
            filled += orders_filled
            left -= units_filled
            least = 2 * len(asked)
        return filled

    async def fill_orders(self, order_ids: list[str], sku: str | None = None) -> tuple[int, int]:
        """Asks availability to fill the orders' backorders, in this order (oldest
        first: the first served first), 100 orders a call; records what each got.
        Returns how many orders filled, and how many units of ``sku`` they got. A
        refusal is that order's own (logged; the others go on); availability
        unreachable raises (``ProblemError``)."""
        filled = units = 0
        for start in range(0, len(order_ids), FILLS_PER_CALL):
            heads = await self._ask_for(order_ids[start : start + FILLS_PER_CALL])
            if heads:
                orders_filled, fills = await self._fill(heads)
                filled += orders_filled
                units += sum(
                    int(claim["quantity"])
                    for claims in fills.values()
                    for claim in claims or ()
                    if claim.get("sku") == sku
                )
        return filled, units

    async def _ask_for(self, order_ids: list[str]) -> list[Any]:
        """The orders that may be filled now, marked as asked (``fill_asked_at``, in
        one transaction under their locks, decision 0063): no cancellation may plan
        their units until the answer is recorded, and none that is open may be
        outrun (its plan counts their backorders, filled at a sweep after it)."""
        async with self.db.transaction() as tx:
            locked = {
                row.order_id: row for row in await tx.conn.execute(_LOCK_ASKED, {"at": order_ids})
            }
            cancelling = await cancellations_open(tx.conn, list(locked))
            heads = [
                locked[order_id]
                for order_id in order_ids
                if order_id in locked
                and locked[order_id].status in FILLABLE
                and order_id not in cancelling
            ]
            if heads:
                await tx.conn.execute(
                    _MARK_ASKED,
                    {"at": [head.order_id for head in heads], "asked": datetime.now(UTC)},
                )
        return heads

    async def _fill(self, heads: list[Any]) -> tuple[int, dict[str, list[dict[str, Any]] | None]]:
        """How many orders filled, and what each was answered."""
        asks: list[tuple[str, str, dict[str, Any]]] = []
        for head in heads:
            body: dict[str, Any] = {}
            if head.ship_to and head.ship_to.get("region"):
                body["ship_to"] = head.ship_to["region"]
            asks.append((head.order_id, f"fill:{head.order_id}:{head.fill_count}", body))
        try:
            answers = await self.partners.fill_many(asks)
        except ProblemError as exc:
            # An answer lost on the way may have filled them: the marks stay until a
            # sweep asks again with the same keys (``_ask_again``); else nothing happened.
            if not maybe_sent(exc):
                await self._record({}, {head.order_id: None for head in heads})
            raise
        except Refused:
            await self._record({}, {head.order_id: None for head in heads})
            raise
        fills: dict[str, list[dict[str, Any]] | None] = {}
        for order_id, answer in answers.items():
            if isinstance(answer, Refused):
                # This order's refusal; the other orders waiting for the sku go on
                # (a sweep triggers the sku again). Its key still running there: the
                # mark stays, and a sweep asks again.
                log.warning("filling order %s: %s", order_id, answer)
                if answer.type != "/problems/request-in-progress":
                    fills[order_id] = None
            else:
                fills[order_id] = [
                    claim for claim in answer.get("filled", []) if int(claim.get("quantity", 0)) > 0
                ]
        return await self._record({head.order_id: head for head in heads}, fills), fills

    async def _record(
        self, heads: dict[str, Any], fills: dict[str, list[dict[str, Any]] | None]
    ) -> int:
        """Records the orders' answers in one transaction: the marks go, each fill is
        recorded as its own (one that no longer fits its lines is logged and left; None:
        refused, nothing filled); how many orders filled."""
        filled = 0
        if not fills:
            return filled
        async with self.db.transaction() as tx:
            await repo.lock_many(tx, list(fills))
            await tx.conn.execute(_UNMARK_ASKED, {"at": sorted(fills)})
            for order_id, claims in fills.items():
                if claims is not None:
                    filled += await self._record_one(tx, heads[order_id], claims)
        if filled:
            self.releaser.wake()
        return filled

    async def _record_one(self, tx: Tx, head: Any, filled: list[dict[str, Any]]) -> bool:
        order_id = head.order_id
        working = await repo.lock(tx, order_id)
        assert working is not None
        if int(working.head.fill_count) != int(head.fill_count):
            return False  # recorded by another run
        per_sku: dict[str, int] = {}
        for claim in filled:
            per_sku[str(claim["sku"])] = per_sku.get(str(claim["sku"]), 0) + int(claim["quantity"])
        if not per_sku:
            # Nothing filled: the order is as it was (no new version, no history, no
            # ERP sync); only the next attempt's key moves on.
            await tx.conn.execute(
                _NEXT_FILL, {"at_order": order_id, "next": int(head.fill_count) + 1}
            )
            return False
        try:
            for sku, quantity in sorted(per_sku.items()):
                working.line(sku).fill(quantity)
        except QuantityRefused:
            log.exception("fill of order %s does not fit its lines; not recorded", order_id)
            return False
        await changes.queue_releases(tx, order_id, filled)
        await changes.commit(tx, working, "backorder_filled", fill_count=int(head.fill_count) + 1)
        return True

    async def once(self) -> int:
        """Works through the triggered skus; returns how many orders filled. A sku with
        nothing available to promise anywhere has nothing to fill: its trigger goes
        without asking for its waiting orders (fills only take stock, and the next
        rise triggers it again)."""
        filled = 0
        triggered = await self._triggered()
        if not triggered:
            return 0
        try:
            available = await self.partners.available_to_promise([r.sku for r in triggered])
        except (ProblemError, Refused) as exc:
            log.warning("reading what the triggered skus have available: %s", exc)
            return 0  # next turn, triggers kept
        empty = [row for row in triggered if available.get(row.sku, 1) <= 0]
        await self._done(empty)
        for row in triggered:
            if available.get(row.sku, 1) <= 0:
                continue
            try:
                filled += await self.fill_sku(row.sku, available.get(row.sku, 1))
            except Refused as exc:  # the call as a whole: a sweep triggers the sku again
                log.warning("filling the backorders of %s: %s", row.sku, exc)
            except ProblemError as exc:
                log.warning("filling the backorders of %s: %s", row.sku, exc)
                return filled  # availability unreachable: next turn, trigger kept
            await self._done([row])
        return filled

    async def _done(self, triggers: list[Any]) -> None:
        """Deletes the triggers as read: one raised again meanwhile stays."""
        if not triggers:
            return
        async with self.db.transaction() as tx:
            await tx.conn.execute(
                _TRIGGER_DONE,
                [{"at_sku": row.sku, "at_raised": row.raised_at} for row in triggers],
            )

    async def sweep(self) -> None:
        """The safety net: every sku that has backorders is triggered again, and the
        fills asked whose answers were lost are asked again (their keys replay)."""
        await self._ask_again()
        async with self.db.read() as conn:
            skus = [
                row.sku
                for row in await conn.execute(
                    select(order_lines.c.sku).where(order_lines.c.backordered > 0).distinct()
                )
            ]
        if skus:
            async with self.db.transaction() as tx:
                await trigger(tx, skus)

    async def _ask_again(self) -> None:
        stale = datetime.now(UTC) - timedelta(seconds=ASKED_STALE_SECONDS)
        async with self.db.read() as conn:
            asked = [
                row.order_id
                for row in await conn.execute(
                    select(orders.c.order_id)
                    .where(orders.c.fill_asked_at < stale)
                    .order_by(orders.c.created_at, orders.c.order_id)
                )
            ]
        if asked:
            await self.fill_orders(asked)

    async def __call__(self, stop: asyncio.Event) -> None:
        turns = 0
        while not stop.is_set():
            try:
                await self.once()
                turns += 1
                if turns % 6 == 0:
                    await self.sweep()
            except Exception:
                log.exception("filling backorders failed")
            await sleep_or_wake(self._wake, self.every)
            await asyncio.sleep(0.05)  # let the waking transaction commit, and a burst gather
