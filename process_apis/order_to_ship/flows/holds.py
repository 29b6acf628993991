"""An operator's decision on an order held for credit (decision 0026): release it
(its allocated units are queued for the warehouses, the lines decide its state from
then on) or reject it (the allocation is given back, every unit cancelled). Both are
for staff only (``orders:admin``, which a client bound to a customer never holds)."""

from __future__ import annotations

import asyncio
from typing import Any

from process_apis.order_to_ship.flows import changes
from process_apis.order_to_ship.flows.backorders import trigger
from process_apis.order_to_ship.flows.cancel_order import cancellation_open, in_progress
from process_apis.order_to_ship.flows.partners import Partners, Refused
from process_apis.order_to_ship.lifecycle.states import IllegalTransition
from process_apis.order_to_ship.orders import reads
from process_apis.order_to_ship.orders import repository as repo
from process_apis.order_to_ship.orders.schemas import Order
from shared.db import Database, Tx
from shared.refusals import Refusal


def _open_claims(allocation: dict[str, Any] | None) -> list[dict[str, Any]]:
    """What the allocation holds at each location and has not released or shipped."""
    claims = []
    for line in (allocation or {}).get("lines", []):
        for claim in line.get("locations") or []:
            open_units = (
                int(claim["quantity"])
                - int(claim.get("shipped", 0))
                - int(claim.get("released", 0))
            )
            if open_units > 0:
                claims.append(
                    {
                        "sku": line["sku"],
                        "location_id": claim["location_id"],
                        "quantity": open_units,
                    }
                )
    return claims


def _unreadable(exc: Refused) -> Refusal:
    why = f"Availability refused the allocation's read: {exc.detail}"
    return Refusal(502, "availability-refused", why)


class HoldDecisions:
    def __init__(self, db: Database, partners: Partners, releaser: Any, filler: Any = None) -> None:
        self.db = db
        self.partners = partners
        self.releaser = releaser
        self.filler = filler

    async def release(self, order: Order, note: str) -> Order:
        if order.status != "on_hold":
            raise IllegalTransition(order.order_id, order.status, "accepted")
        try:
            claims = _open_claims(await self.partners.allocation(order.order_id))
        except Refused as exc:
            raise _unreadable(exc) from exc
        async with self.db.transaction() as tx:
            working = await self._held(tx, order.order_id)
            await self._release_held(tx, working, claims, note)
            done = await reads.get(tx.conn, order.order_id)
        self._wake()
        assert done is not None
        return done

    async def release_many(self, order_ids: list[str], note: str) -> list[Order | Refusal]:
        """Up to 100 orders each released as ``release`` would release it, in one
        transaction: per order, in order, the order or the refusal its single release
        would answer (404 no such order, 409 not held or being cancelled, 502 its
        allocation unreadable). A refused one changes nothing of the others."""
        async with self.db.lookup() as conn:
            status_of = await repo.statuses(conn, order_ids)
        refused: dict[str, Refusal] = {}
        for order_id in order_ids:
            status = status_of.get(order_id)
            if status is None:
                refused[order_id] = Refusal(404, "order-not-found", f"No order {order_id}.")
            elif status != "on_hold":
                refused[order_id] = IllegalTransition(order_id, status, "accepted")
        held = [order_id for order_id in order_ids if order_id not in refused]
        claims_of: dict[str, list[dict[str, Any]]] = {}
        read = await asyncio.gather(
            *(self.partners.allocation(order_id) for order_id in held), return_exceptions=True
        )
        for order_id, allocation in zip(held, read, strict=True):
            if isinstance(allocation, Refusal):
                refused[order_id] = allocation
            elif isinstance(allocation, Refused):
                refused[order_id] = _unreadable(allocation)
            elif isinstance(allocation, BaseException):
                raise allocation
            else:
                claims_of[order_id] = _open_claims(allocation)
        async with self.db.transaction() as tx:
            await repo.lock_many(tx, claims_of)
            released: list[str] = []
            for order_id, claims in claims_of.items():
                try:
                    working = await self._held(tx, order_id)
                except Refusal as refusal:
                    refused[order_id] = refusal
                    continue
                await self._release_held(tx, working, claims, note)
                released.append(order_id)
            where = reads.OrderFilter(order_ids=tuple(released))
            done = (
                {o.order_id: o for o in await reads.page(tx.conn, where, None, len(released))}
                if released
                else {}
            )
        self._wake()
        return [refused.get(order_id) or done[order_id] for order_id in order_ids]

    @staticmethod
    async def _held(tx: Tx, order_id: str) -> repo.Working:
        """The order locked for its release, or the 409 refusing it (nothing written):
        no longer held, or a cancellation of it open."""
        working = await repo.lock(tx, order_id)
        assert working is not None
        if working.status != "on_hold":
            raise IllegalTransition(order_id, working.status, "accepted")
        if await cancellation_open(tx.conn, order_id):
            # Its plan counts these units as unreleased: queued now, they would
            # reach a warehouse while availability gives them back.
            raise in_progress(order_id)
        return working

    @staticmethod
    async def _release_held(
        tx: Tx, working: repo.Working, claims: list[dict[str, Any]], note: str
    ) -> None:
        await changes.queue_releases(tx, working.order_id, claims)
        # Stock that arrived while it was held did not fill it: its backorders may
        # fill now, not at the filler's next sweep.
        await trigger(tx, [sku for sku, line in working.lines.items() if line.backordered])
        working.status = "accepted"  # released from the hold: the lines decide
        await changes.commit(
            tx,
            working,
            f"hold_released: {note}"[:64],
            status=changes.next_status(working),
            hold_reason=None,
        )

    def _wake(self) -> None:
        self.releaser.wake()
        if self.filler is not None:
            self.filler.wake()

    async def reject(self, order: Order, reason: str) -> Order:
        if order.status != "on_hold":
            raise IllegalTransition(order.order_id, order.status, "rejected")
        async with self.db.read() as conn:
            if await cancellation_open(conn, order.order_id):
                raise in_progress(order.order_id)  # the cancellation gives the units back
        try:
            await self.partners.release(order.order_id)
        except Refused as exc:
            raise Refusal(502, "release-refused", f"Availability refused: {exc.detail}") from exc
        async with self.db.transaction() as tx:
            working = await repo.lock(tx, order.order_id)
            assert working is not None
            if working.status != "on_hold":
                raise IllegalTransition(order.order_id, working.status, "rejected")
            for sku, line in working.lines.items():
                if line.backordered:
                    working.line(sku).cancel_backordered(line.backordered)
                if line.unreleased:
                    working.line(sku).cancel_unreleased(line.unreleased)
            await changes.commit(tx, working, f"rejected: {reason}"[:64], status="rejected")
            done = await reads.get(tx.conn, order.order_id)
        assert done is not None
        return done
