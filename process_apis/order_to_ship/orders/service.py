"""What the routes call, with the object-level rule that a client bound to a customer
sees and changes that customer's orders only (another's: the 404 of an unknown id)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any

from litestar import Response

from process_apis.order_to_ship.flows.cancel_order import CancelOrder, request_key
from process_apis.order_to_ship.flows.holds import HoldDecisions
from process_apis.order_to_ship.flows.place_batch import place_each
from process_apis.order_to_ship.flows.place_order import PlaceOrder
from process_apis.order_to_ship.flows.placement_queue import PlacementQueue
from process_apis.order_to_ship.orders import reads
from process_apis.order_to_ship.orders import repository as repo
from process_apis.order_to_ship.orders.schemas import (
    HoldReleaseResult,
    HoldReleases,
    LineCancellationIn,
    Order,
    OrderBatch,
    OrderBatchItemIn,
    OrderIn,
    StatusChange,
)
from shared.auth.principal import Principal
from shared.db import Database
from shared.models import ItemRefusal, Page
from shared.paging import decode_cursor, keyset_page
from shared.refusals import Refusal

# How long a cancellation waits for work on its order in flight before answering 409.
IN_FLIGHT_WAIT_SECONDS = 2.0


class OrderService:
    def __init__(
        self, db: Database, place: PlaceOrder, cancel: CancelOrder, holds: HoldDecisions
    ) -> None:
        self.db = db
        self.place_flow = place
        self.placements = PlacementQueue(place)
        self.cancel_flow = cancel
        self.holds = holds

    async def place(self, principal: Principal, key: str, data: OrderIn) -> Response[Any]:
        return await self.placements.run(principal, key, data)

    async def place_batch(self, principal: Principal, items: list[OrderBatchItemIn]) -> OrderBatch:
        return await place_each(self.place_flow, principal, items)

    async def get(self, principal: Principal, order_id: str) -> Order:
        async with self.db.lookup() as conn:
            order = await reads.get(conn, order_id)
        if order is None or not principal.may_see_customer(order.customer_id):
            raise Refusal(404, "order-not-found", f"No order {order_id}.")
        return order

    async def list(
        self,
        principal: Principal,
        where: reads.OrderFilter,
        cursor: str | None,
        limit: int,
        *,
        count: bool = False,
    ) -> Page[Order]:
        """A bound client's list holds its own customer's orders only (another
        customer named: an empty page; ids of another's orders are left out)."""
        if principal.customer_id is not None:
            if where.customer_id not in (None, principal.customer_id):
                return Page([], None, 0) if count else Page([], None)
            where = replace(where, customer_id=principal.customer_id)
        async with self.db.read() as conn:
            found = await reads.page(conn, where, decode_cursor(cursor), limit + 1)
            total = await reads.count(conn, where) if count else None
        page = keyset_page(found, limit, key=lambda o: o.order_id)
        if total is not None:
            page.total_count = total
        return page

    async def history(
        self, principal: Principal, order_id: str, cursor: str | None, limit: int
    ) -> Page[StatusChange]:
        await self.get(principal, order_id)
        raw = decode_cursor(cursor) or ""
        after = int(raw) if raw.isdigit() else -1  # a position in the history (from 0)
        async with self.db.read() as conn:
            rows = await repo.history(conn, order_id, after, limit + 1)
        changes = [
            (
                row.seq,
                StatusChange(row.from_status, row.to_status, row.at, row.cause, row.correlation_id),
            )
            for row in rows
        ]
        page = keyset_page(changes, limit, key=lambda c: str(c[0]))
        return Page([change for _, change in page.items], page.next_cursor)

    async def cancel(self, principal: Principal, order_id: str) -> Order:
        async def attempt() -> Order:
            return await self.cancel_flow.whole(await self.get(principal, order_id))

        return await _after_work_in_flight(attempt)

    async def cancel_lines(
        self, principal: Principal, order_id: str, data: LineCancellationIn, key: str
    ) -> Order:
        wanted: dict[str, int] = {}
        for line in data.lines:
            wanted[line.sku] = wanted.get(line.sku, 0) + line.quantity

        async def attempt() -> Order:
            order = await self.get(principal, order_id)
            return await self.cancel_flow.units(
                order, wanted, data.reason, request_key(principal.client_id, key)
            )

        return await _after_work_in_flight(attempt)

    async def short_close(self, principal: Principal, order_id: str, sku: str | None) -> Order:
        async def attempt() -> Order:
            order = await self.get(principal, order_id)
            if sku is not None and sku not in {line.sku for line in order.lines}:
                raise Refusal(404, "line-not-found", f"Order {order_id} has no line for {sku}.")
            return await self.cancel_flow.backorders(order, None if sku is None else [sku])

        return await _after_work_in_flight(attempt)

    async def release_hold(self, principal: Principal, order_id: str, note: str) -> Order:
        return await self.holds.release(await self.get(principal, order_id), note)

    async def release_holds(self, order_ids: Sequence[str], note: str) -> HoldReleases:
        """Staff only (the route's scope): every order is visible to the caller."""
        if len(set(order_ids)) != len(order_ids):
            raise Refusal(422, "duplicate-order-id", "An order appears more than once.")
        answers = await self.holds.release_many([*order_ids], note)
        return HoldReleases(
            [
                HoldReleaseResult(order_id, refusal=ItemRefusal.of(answer))
                if isinstance(answer, Refusal)
                else HoldReleaseResult(order_id, order=answer)
                for order_id, answer in zip(order_ids, answers, strict=True)
            ]
        )

    async def reject(self, principal: Principal, order_id: str, reason: str) -> Order:
        return await self.holds.reject(await self.get(principal, order_id), reason)


async def _after_work_in_flight(attempt: Callable[[], Awaitable[Order]]) -> Order:
    """A cancellation that meets the order's placement, a release or a backorder fill in
    flight (409 ``order-in-progress``, nothing written) waits for it, reading the order
    again, for up to ``IN_FLIGHT_WAIT_SECONDS``: such work ends within milliseconds, and
    the caller then gets its answer rather than a Retry-After (decision 0063)."""
    deadline = time.monotonic() + IN_FLIGHT_WAIT_SECONDS
    pause = 0.02
    while True:
        try:
            return await attempt()
        except Refusal as refusal:
            busy = refusal.status == 409 and refusal.slug == "order-in-progress"
            if not busy or time.monotonic() + pause > deadline:
                raise
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.2)
