"""Cancellation with compensation: cancel every fulfillment order in the WMS first (the
WMS refuses once a warehouse has shipped, which stops the cancel), then release the
allocation, then mark the order ``cancelled`` and emit ``order.cancelled``.

Every step is idempotent, so a cancel interrupted half-way is finished by calling it
again; cancelling a cancelled order answers it unchanged."""

from __future__ import annotations

from process_apis.order_to_ship.flows.partners import Partners, Refused
from process_apis.order_to_ship.orders import repository as repo
from process_apis.order_to_ship.orders.events import EVENT_SOURCE
from process_apis.order_to_ship.orders.schemas import Order
from shared.db import Database
from shared.events.catalog import STREAM_ORDERS, OrderCancelled
from shared.events.envelope import new_event
from shared.refusals import Refusal


def _refuse_if_not_cancellable(order: Order) -> None:
    if order.status == "pending":
        raise Refusal(
            409,
            "order-in-progress",
            f"Order {order.order_id} is still being placed; retry shortly.",
            headers={"Retry-After": "2"},
        )
    if order.shipments or any(line.shipped for line in order.lines):
        raise Refusal(
            409, "order-shipped", f"Order {order.order_id} has shipped and cannot be cancelled."
        )


class CancelOrder:
    def __init__(self, db: Database, partners: Partners) -> None:
        self.db = db
        self.partners = partners

    async def run(self, order: Order, reason: str = "requested") -> Order:
        if order.status == "cancelled":
            return order
        _refuse_if_not_cancellable(order)
        try:
            for fo in order.fulfillment_orders:
                await self.partners.cancel_fulfillment(fo.fulfillment_order_id)
        except Refused as exc:
            if exc.status_code == 409:
                raise Refusal(
                    409,
                    "order-shipped",
                    f"A warehouse has already shipped order {order.order_id}: {exc.detail}",
                ) from exc
            raise Refusal(
                502, "fulfillment-refused", f"The WMS refused the cancel: {exc.detail}"
            ) from exc
        try:
            await self.partners.release(order.order_id)
        except Refused as exc:
            raise Refusal(
                502, "release-refused", f"Availability refused the release: {exc.detail}"
            ) from exc
        return await self._mark_cancelled(order, reason)

    async def _mark_cancelled(self, order: Order, reason: str) -> Order:
        current: Order | None = order
        for _ in range(5):
            assert current is not None
            if current.status == "cancelled":
                return current
            _refuse_if_not_cancellable(current)
            async with self.db.transaction() as tx:
                if await repo.cancel(tx.conn, current.order_id, current.version):
                    done = await repo.get(tx.conn, current.order_id)
                    assert done is not None
                    tx.emit(
                        STREAM_ORDERS,
                        new_event(
                            source=EVENT_SOURCE,
                            type_="order.cancelled",
                            subject=done.order_id,
                            sequence=done.version,
                            payload=OrderCancelled(done.order_id, done.customer_id, reason),
                        ),
                    )
                    return done
                current = await repo.get(tx.conn, current.order_id)
        raise Refusal(409, "concurrent-update", f"Order {order.order_id} keeps changing; retry.")
