"""Cancellation with compensation, of a whole order or of some of its units
(decision 0026). Units are taken back cheapest first:

1. backordered units: availability forgets them;
2. allocated units not released yet: their queued releases shrink (in the order's
   own transaction, before anything else, so the releaser cannot send them);
3. units at a warehouse and not picked: the WMS cancels them on the fulfillment order;
4. picked units: the WMS puts them back to stock (``pick.put_away``), then cancels them;

then availability releases what was allocated, and one transaction writes the lines
and the status. Units that shipped are refused (409 ``/problems/units-shipped``; a
whole cancel once anything shipped is 409 ``/problems/order-shipped``). Every
downstream call carries a key derived from the cancellation's own, so a cancellation
interrupted half-way is finished by repeating it. A cancellation the warehouse outran
(it shipped the planned units meanwhile) cannot finish: it is abandoned (see
``CancelOrder._abandon``), so the order it planned for goes on."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import bindparam, insert, select, update

from process_apis.order_to_ship.db import order_cancellations, order_releases
from process_apis.order_to_ship.flows import changes
from process_apis.order_to_ship.flows.partners import Partners, Refused
from process_apis.order_to_ship.lifecycle.states import IllegalTransition
from process_apis.order_to_ship.orders import reads
from process_apis.order_to_ship.orders import repository as repo
from process_apis.order_to_ship.orders.events import EVENT_SOURCE
from process_apis.order_to_ship.orders.schemas import Order
from shared.db import Database, Tx
from shared.events.catalog import STREAM_ORDERS, OrderCancelled
from shared.events.envelope import new_event
from shared.refusals import Refusal


class Plan(msgspec.Struct):
    """Where each sku's cancelled units come from."""

    backordered: dict[str, int] = msgspec.field(default_factory=dict)
    unreleased: dict[str, int] = msgspec.field(default_factory=dict)
    at_warehouse: dict[str, int] = msgspec.field(default_factory=dict)  # unpicked + put back
    # fulfillment order -> sku -> (unpicked to cancel, picked to put back first)
    per_fulfillment: dict[str, dict[str, tuple[int, int]]] = msgspec.field(default_factory=dict)
    # warehouse -> sku -> units taken out of queued releases (queued again if abandoned)
    held_back: dict[str, dict[str, int]] = msgspec.field(default_factory=dict)


ABANDONED = 2  # ``order_cancellations.done``: 0 open, 1 recorded, 2 abandoned


class _ShippedMeanwhile(Exception):
    """The WMS refused a fulfillment order's cancellation (409): its units shipped after
    the plan was made. ``cancelled``: the fulfillment orders cancelled before it."""

    def __init__(self, detail: str, cancelled: list[str], put_aways: list[dict[str, Any]]) -> None:
        super().__init__(detail)
        self.detail = detail
        self.cancelled = cancelled
        self.put_aways = put_aways


def in_progress(order_id: str) -> Refusal:
    return Refusal(
        409,
        "order-in-progress",
        f"Order {order_id} is being placed, released or filled right now; retry shortly.",
        headers={"Retry-After": "1"},
    )


def request_key(client_id: str, key: str) -> str:
    return hashlib.sha256(f"{client_id}\0{key}".encode()).hexdigest()[:24]


class CancelOrder:
    def __init__(self, db: Database, partners: Partners) -> None:
        self.db = db
        self.partners = partners

    # -- the commands ------------------------------------------------------------------
    async def whole(self, order: Order, reason: str = "requested") -> Order:
        if order.status == "cancelled":
            return order
        if order.status == "pending":
            raise in_progress(order.order_id)
        shipped = sum(line.shipped for line in order.lines)
        if shipped:
            raise Refusal(
                409,
                "order-shipped",
                f"{shipped} units of order {order.order_id} have shipped; cancel the "
                "units still open instead (POST .../line-cancellations).",
            )
        self._refuse_state(order, "cancelled")
        wanted = {line.sku: line.quantity - line.cancelled for line in order.lines}
        return await self._cancel(order, wanted, reason, f"cancel:{order.order_id}", whole=True)

    async def units(self, order: Order, wanted: dict[str, int], reason: str, key: str) -> Order:
        key = f"units:{order.order_id}:{key}"
        if await self._planned_before(key, wanted):  # a retry: replayed or finished
            return await self._cancel(order, wanted, reason, key, whole=False)
        self._refuse_state(order, "cancelled")
        by_sku = {line.sku: line for line in order.lines}
        unknown = sorted(set(wanted) - set(by_sku))
        if unknown:
            raise Refusal(
                422, "unknown-line", f"Order {order.order_id} has no line for {', '.join(unknown)}."
            )
        over = {
            sku: q
            for sku, q in wanted.items()
            if q > by_sku[sku].quantity - by_sku[sku].cancelled - by_sku[sku].shipped
        }
        if over:
            raise Refusal(
                409,
                "units-shipped",
                f"More units than remain open on order {order.order_id}: "
                + ", ".join(f"{sku} {q}" for sku, q in sorted(over.items()))
                + " (shipped units cannot be cancelled).",
            )
        return await self._cancel(order, wanted, reason, key, whole=False)

    async def _planned_before(self, key: str, wanted: dict[str, int]) -> bool:
        """True when this key's cancellation was planned before (its units are no longer
        open, so it is not checked again); a key reused for other units is 422."""
        async with self.db.read() as conn:
            stored = await _stored_plan(conn, key)
        if stored is None:
            return False
        plan = msgspec.convert(stored.plan, Plan)
        planned: dict[str, int] = {}
        for part in (plan.backordered, plan.unreleased, plan.at_warehouse):
            for sku, quantity in part.items():
                planned[sku] = planned.get(sku, 0) + quantity
        if {sku: q for sku, q in planned.items() if q} != wanted:
            raise Refusal(
                422,
                "idempotency-key-reused",
                "This Idempotency-Key cancelled other units; use a new key for another "
                "cancellation.",
            )
        return True

    async def backorders(self, order: Order, skus: list[str] | None = None) -> Order:
        """Short-closes lines: their backordered units are cancelled, the rest stands."""
        self._refuse_state(order, "cancelled")
        wanted = {
            line.sku: line.backordered
            for line in order.lines
            if line.backordered and (skus is None or line.sku in skus)
        }
        if not wanted:
            return order
        key = f"backorders:{order.order_id}:{order.version}"
        return await self._cancel(order, wanted, "short_closed", key, whole=False)

    @staticmethod
    def _refuse_state(order: Order, target: str) -> None:
        if order.status == "pending":
            raise in_progress(order.order_id)
        if order.status in ("completed", "rejected", "cancelled", "shipped", "delivered"):
            raise IllegalTransition(order.order_id, order.status, target)

    # -- the steps -----------------------------------------------------------------------
    async def _cancel(
        self, order: Order, wanted: dict[str, int], reason: str, key: str, *, whole: bool
    ) -> Order:
        plan = await self._planned(order, wanted, key)
        if plan is None:  # this cancellation completed before: the order as it is now
            async with self.db.read() as conn:
                done = await reads.get(conn, order.order_id)
            assert done is not None
            return done
        try:
            put_aways = await self._warehouse(plan, key)
        except _ShippedMeanwhile as outran:
            await self._abandon(order.order_id, key, plan, outran)
            raise Refusal(
                409, "units-shipped", f"The warehouse has shipped them meanwhile: {outran.detail}"
            ) from outran
        release = {
            sku: plan.unreleased.get(sku, 0) + plan.at_warehouse.get(sku, 0) for sku in wanted
        }
        lines = [
            {
                "sku": sku,
                "release": release[sku],
                "cancel_backordered": plan.backordered.get(sku, 0),
            }
            for sku in sorted(wanted)
            if release[sku] or plan.backordered.get(sku, 0)
        ]
        if lines:
            try:
                await self.partners.release_lines(
                    order.order_id, f"{key}:av", {"reason": "line_cancelled", "lines": lines}
                )
            except Refused as exc:
                raise Refusal(
                    502, "release-refused", f"Availability refused: {exc.detail}"
                ) from exc
        return await self._record(order.order_id, key, plan, put_aways, reason, whole=whole)

    async def _planned(self, order: Order, wanted: dict[str, int], key: str) -> Plan | None:
        """The cancellation's plan: stored by its first run (None once it completed),
        else computed, stored and the queued releases shrunk, in one transaction."""
        async with self.db.read() as conn:
            stored = await _stored_plan(conn, key)
        if stored is not None:
            return _stored_or_done(stored)
        plan = await self._plan(order, wanted)
        async with self.db.transaction() as tx:
            stored = await _stored_plan(tx.conn, key)
            if stored is not None:
                return _stored_or_done(stored)
            await _still_as_planned(tx, order.order_id, plan)
            plan.held_back = await _hold_back_queued(tx, order.order_id, plan.unreleased)
            await tx.conn.execute(
                insert(order_cancellations).values(
                    cancellation_id=key,
                    order_id=order.order_id,
                    plan=msgspec.to_builtins(plan),
                    done=0,
                    created_at=datetime.now(UTC),
                )
            )
        return plan

    async def _plan(self, order: Order, wanted: dict[str, int]) -> Plan:
        plan = Plan()
        fulfillments: list[dict[str, Any]] = []
        for ref in order.fulfillment_orders:
            found = await self.partners.fulfillment(ref.fulfillment_order_id)
            if found is not None and found.get("status") != "cancelled":
                fulfillments.append(found)
        by_sku = {line.sku: line for line in order.lines}
        for sku, quantity in wanted.items():
            line = by_sku[sku]
            rest = quantity
            take = min(rest, line.backordered)
            plan.backordered[sku], rest = take, rest - take
            take = min(rest, line.allocated - line.released)
            plan.unreleased[sku], rest = take, rest - take
            for fo in fulfillments:
                rest = _take_at(plan, fo, sku, rest)
            if rest:
                raise in_progress(order.order_id)  # the warehouse moved meanwhile
        return plan

    async def _warehouse(self, plan: Plan, key: str) -> list[dict[str, Any]]:
        put_aways: list[dict[str, Any]] = []
        cancelled: list[str] = []
        try:
            for fo_id, per_sku in sorted(plan.per_fulfillment.items()):
                picked = [{"sku": s, "quantity": p} for s, (_, p) in sorted(per_sku.items()) if p]
                if picked:
                    put_aways.append(
                        await self.partners.put_away(fo_id, f"{key}:pa:{fo_id}", picked)
                    )
                cancel = [{"sku": s, "quantity": u + p} for s, (u, p) in sorted(per_sku.items())]
                await self.partners.cancel_fulfillment_lines(fo_id, f"{key}:lc:{fo_id}", cancel)
                cancelled.append(fo_id)
        except Refused as exc:
            if exc.status_code == 409:
                raise _ShippedMeanwhile(exc.detail, cancelled, put_aways) from exc
            raise Refusal(502, "fulfillment-refused", f"The WMS refused: {exc.detail}") from exc
        return put_aways

    async def _abandon(
        self, order_id: str, key: str, plan: Plan, outran: _ShippedMeanwhile
    ) -> None:
        """The plan counted units that shipped meanwhile: it can never finish, and kept
        open it would stop the order for good (nothing queues, fills or gives back
        units while a cancellation is open). What the warehouse did cancel (the
        fulfillment orders before the refused one) is recorded as cancelled, its
        allocation released; the rest of the plan is dropped (backorders stay,
        held-back releases are queued again). A retry of it is refused again."""
        done = Plan(per_fulfillment={fo: plan.per_fulfillment[fo] for fo in outran.cancelled})
        for per_sku in done.per_fulfillment.values():
            for sku, (unpicked, picked) in per_sku.items():
                done.at_warehouse[sku] = done.at_warehouse.get(sku, 0) + unpicked + picked
        lines = [
            {"sku": sku, "release": quantity, "cancel_backordered": 0}
            for sku, quantity in sorted(done.at_warehouse.items())
            if quantity
        ]
        if lines:  # failing, the plan stays open: a retry of the cancellation ends here
            try:
                await self.partners.release_lines(
                    order_id, f"{key}:av", {"reason": "line_cancelled", "lines": lines}
                )
            except Refused as exc:
                raise Refusal(
                    502, "release-refused", f"Availability refused: {exc.detail}"
                ) from exc
        async with self.db.transaction() as tx:
            working = await repo.lock(tx, order_id)
            assert working is not None
            abandoned = await tx.conn.execute(
                update(order_cancellations)
                .where(
                    order_cancellations.c.cancellation_id == key, order_cancellations.c.done == 0
                )
                .values(done=ABANDONED)
            )
            if abandoned.rowcount != 1:
                return  # another run of it ended it
            held = [
                {"sku": sku, "location_id": warehouse, "quantity": quantity}
                for warehouse, per_sku in sorted(plan.held_back.items())
                for sku, quantity in sorted(per_sku.items())
            ]
            await changes.queue_releases(tx, order_id, held)  # the releaser polls for them
            if done.at_warehouse or outran.put_aways:
                await self._apply(tx, working, done, outran.put_aways)
                await changes.commit(tx, working, "cancellation_abandoned")

    async def _record(
        self,
        order_id: str,
        key: str,
        plan: Plan,
        put_aways: list[dict[str, Any]],
        reason: str,
        *,
        whole: bool,
    ) -> Order:
        async with self.db.transaction() as tx:
            working = await repo.lock(tx, order_id)
            assert working is not None
            finished = await tx.conn.execute(
                update(order_cancellations)
                .where(
                    order_cancellations.c.cancellation_id == key, order_cancellations.c.done == 0
                )
                .values(done=1)
            )
            if finished.rowcount == 1:
                await self._apply(tx, working, plan, put_aways)
                status = "cancelled" if whole else None
                # A whole cancel announces itself as order.cancelled (its own event).
                await changes.commit(tx, working, reason[:64], status=status, announce=not whole)
                if whole:
                    tx.emit(STREAM_ORDERS, _cancelled_event(working, reason))
            done = await reads.get(tx.conn, order_id)
        assert done is not None
        return done

    @staticmethod
    async def _apply(
        tx: Tx, working: repo.Working, plan: Plan, put_aways: list[dict[str, Any]]
    ) -> None:
        for put_away in put_aways:
            if not await changes.document_applied(
                tx, str(put_away["put_away_id"]), working.order_id
            ):
                _undo_picks(working, put_away)
        for sku, quantity in plan.backordered.items():
            if quantity:
                working.line(sku).cancel_backordered(quantity)
        for sku, quantity in plan.unreleased.items():
            if quantity:
                working.line(sku).cancel_unreleased(quantity)
        for sku, quantity in plan.at_warehouse.items():
            if quantity:
                working.line(sku).withdraw(quantity, backorder=False)


def _undo_picks(working: repo.Working, put_away: dict[str, Any]) -> None:
    for line in put_away.get("lines", []):
        line_quantities = working.line(str(line["sku"]))
        # Its pick may not have reached this service yet: then nothing to undo.
        undone = min(int(line["quantity"]), line_quantities.picked)
        if undone:
            line_quantities.put_away(undone)


def _take_at(plan: Plan, fo: dict[str, Any], sku: str, rest: int) -> int:
    for line in fo.get("lines", []):
        if line["sku"] != sku or rest <= 0:
            continue
        picked, shipped = int(line.get("picked", 0)), int(line.get("shipped", 0))
        unpicked = max(0, int(line["quantity"]) - max(picked, shipped))
        dock = max(0, picked - shipped)
        take_unpicked = min(rest, unpicked)
        take_dock = min(rest - take_unpicked, dock)
        if take_unpicked or take_dock:
            plan.per_fulfillment.setdefault(str(fo["fulfillment_order_id"]), {})[sku] = (
                take_unpicked,
                take_dock,
            )
            plan.at_warehouse[sku] = plan.at_warehouse.get(sku, 0) + take_unpicked + take_dock
        rest -= take_unpicked + take_dock
    return rest


def _stored_or_done(stored: Any) -> Plan | None:
    """A stored cancellation's plan while it is open; None once recorded; abandoned, it
    is refused as it was the first time."""
    if stored.done == ABANDONED:
        raise Refusal(
            409,
            "units-shipped",
            f"The warehouse shipped units of order {stored.order_id} that this "
            "cancellation counted; it was abandoned (cancel the units still open).",
        )
    return None if stored.done else msgspec.convert(stored.plan, Plan)


async def _stored_plan(conn: Any, key: str) -> Any:
    return (
        await conn.execute(
            select(order_cancellations).where(order_cancellations.c.cancellation_id == key)
        )
    ).first()


async def cancellation_open(conn: Any, order_id: str) -> bool:
    """Whether a cancellation of the order planned its units and has not recorded them
    yet (running now, or interrupted and waiting for its retry). Until it has, nothing
    may queue, fill or give back units of the order: its plan counts them as they
    were when it was made."""
    found = await conn.execute(_OPEN_CANCELLATION, {"at_order": order_id})
    return found.first() is not None


async def cancellations_open(conn: Any, order_ids: list[str]) -> set[str]:
    """Those of the orders with a cancellation open (``cancellation_open``)."""
    if not order_ids:
        return set()
    found = await conn.execute(_OPEN_CANCELLATIONS, {"at_orders": order_ids})
    return {row.order_id for row in found}


_OPEN_CANCELLATION = (
    select(order_cancellations.c.cancellation_id)
    .where(order_cancellations.c.order_id == bindparam("at_order"), order_cancellations.c.done == 0)
    .limit(1)
)


async def _still_as_planned(tx: Tx, order_id: str, plan: Plan) -> None:
    """The plan was made from the order as read before the warehouse was asked. Checked
    under the order's lock, the caller retries (409 order-in-progress) and plans again
    when meanwhile a release recorded units the plan counts as unreleased (they are at
    the warehouse now), a fill recorded units it counts as backordered, or a fill is
    being asked of availability (decision 0063: its answer could take the backordered
    units the plan would have availability forget, and the cancellation could then
    never finish)."""
    working = await repo.lock(tx, order_id)
    if working is None or working.head.fill_asked_at is not None:
        raise in_progress(order_id)
    for sku in sorted(set(plan.unreleased) | set(plan.backordered)):
        unreleased, backordered = plan.unreleased.get(sku, 0), plan.backordered.get(sku, 0)
        line = working.lines.get(sku)
        if (unreleased or backordered) and (
            line is None or unreleased > line.unreleased or backordered > line.backordered
        ):
            raise in_progress(order_id)


async def _hold_back_queued(
    tx: Tx, order_id: str, unreleased: dict[str, int]
) -> dict[str, dict[str, int]]:
    """Queued releases shrink by the cancelled units, before anything is sent. Returns
    what was taken, per warehouse and sku."""
    held: dict[str, dict[str, int]] = {}
    if not any(unreleased.values()):
        return held
    rows = await repo.releases_of(tx.conn, order_id, lock=True)
    if any(row.status == "sending" for row in rows):
        raise in_progress(order_id)
    left = dict(unreleased)
    for row in rows:
        if row.status == "queued":
            for sku, quantity in (await _shrink(tx, row, left, order_id)).items():
                per_sku = held.setdefault(str(row.warehouse_id), {})
                per_sku[sku] = per_sku.get(sku, 0) + quantity
    return held


async def _shrink(tx: Tx, row: Any, left: dict[str, int], order_id: str) -> dict[str, int]:
    lines = []
    taken: dict[str, int] = {}
    for line in row.lines:
        take = min(left.get(line["sku"], 0), int(line["quantity"]))
        left[line["sku"]] = left.get(line["sku"], 0) - take
        if take:
            taken[line["sku"]] = taken.get(line["sku"], 0) + take
        if int(line["quantity"]) - take > 0:
            lines.append({"sku": line["sku"], "quantity": int(line["quantity"]) - take})
    if lines == list(row.lines):
        return taken
    shrunk = await tx.conn.execute(
        update(order_releases)
        .where(order_releases.c.release_id == row.release_id, order_releases.c.status == "queued")
        .values(lines=lines, status="queued" if lines else "cancelled")
    )
    if shrunk.rowcount != 1:  # claimed by the releaser meanwhile: it is on its way
        raise in_progress(order_id)
    return taken


def _cancelled_event(working: repo.Working, reason: str) -> Any:
    return new_event(
        source=EVENT_SOURCE,
        type_="order.cancelled",
        subject=working.order_id,
        sequence=int(working.head.version) + 1,
        payload=OrderCancelled(working.order_id, str(working.head.customer_id), reason),
    )


_OPEN_CANCELLATIONS = (
    select(order_cancellations.c.order_id)
    .where(
        order_cancellations.c.order_id.in_(bindparam("at_orders", expanding=True)),
        order_cancellations.c.done == 0,
    )
    .distinct()
)
