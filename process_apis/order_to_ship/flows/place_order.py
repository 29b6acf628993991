"""The place-order saga.

1. read-only checks with the ERP (customer, items and prices, credit limit);
2. one transaction: the order in ``pending`` plus the Idempotency-Key reservation;
3. allocate with availability (Idempotency-Key ``alloc:{order_id}``); a refusal
   (insufficient stock) deletes the order and forgets the key in one transaction;
4. one fulfillment order per warehouse of the allocation (``fo:{order_id}:{warehouse}``);
5. one transaction: lines allocated/backordered, status ``released`` or ``backordered``,
   ``order.accepted`` in the outbox, the Idempotency-Key completed with the 201 body.

Steps 3 to 5 are idempotent, so an order left ``pending`` by a crash or an unreachable
partner is finished by re-running them (``flows/resume.py``).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

import msgspec
import uuid_utils
from litestar import Response
from sqlalchemy.exc import IntegrityError

from process_apis.order_to_ship.flows.checks import check_with_erp
from process_apis.order_to_ship.flows.partners import Partners, Refused
from process_apis.order_to_ship.orders import repository as repo
from process_apis.order_to_ship.orders.events import EVENT_SOURCE
from process_apis.order_to_ship.orders.schemas import FulfillmentRef, Order, OrderIn
from shared.auth.principal import Principal
from shared.db import Database
from shared.events.catalog import STREAM_ORDERS, Line, OrderAccepted
from shared.events.envelope import new_event
from shared.idempotency import IdempotencyStore, fingerprint
from shared.refusals import Refusal

log = logging.getLogger("tally.orders.place")


def new_order_id() -> str:
    return f"ORD-{uuid_utils.uuid7()}"


class PlaceOrder:
    def __init__(self, db: Database, idempotency: IdempotencyStore, partners: Partners) -> None:
        self.db = db
        self.idempotency = idempotency
        self.partners = partners

    # -- the request ---------------------------------------------------------------
    async def run(self, principal: Principal, key: str, data: OrderIn) -> Response[Any]:
        if not principal.may_see_customer(data.customer_id):
            # Decided from the token alone, before any lookup: the same answer whether
            # the other customer exists or not (ADR 0014).
            raise Refusal(
                403,
                "customer-not-permitted",
                f"This client may place orders for customer {principal.customer_id} only.",
            )
        fp = fingerprint(data)
        async with self.db.read() as conn:
            found = await self.idempotency.stored_answer(conn, principal.client_id, key, fp)
        if found is not None:
            return found
        try:
            currency, prices = await check_with_erp(self.partners, data)
        except Refused as exc:
            raise Refusal(502, "erp-refused", f"The ERP refused a check: {exc.detail}") from exc
        order_id = new_order_id()
        try:
            async with self.db.transaction() as tx:
                found = await self.idempotency.stored_answer(tx.conn, principal.client_id, key, fp)
                if found is not None:
                    return found
                await repo.insert_pending(
                    tx.conn,
                    order_id=order_id,
                    customer_id=data.customer_id,
                    channel=data.channel,
                    policy=data.policy,
                    currency=currency,
                    lines=[(line.sku, line.quantity, prices[line.sku]) for line in data.lines],
                    client_id=principal.client_id,
                    idempotency_key=key,
                )
                await self.idempotency.reserve(tx.conn, principal.client_id, key, fp, order_id)
        except IntegrityError:
            # The same key committed concurrently: answer as that request would be answered.
            found = await self.idempotency.replay_committed(principal.client_id, key, fp)
            if found is None:
                raise
            return found
        body = await self.advance(order_id)
        return Response(body, status_code=201, media_type="application/json")

    # -- the idempotent steps (request and resumer) ---------------------------------
    async def advance(self, order_id: str) -> bytes:
        """Allocate, release to the warehouses and complete a ``pending`` order."""
        async with self.db.read() as conn:
            order = await repo.get(conn, order_id)
        if order is None or order.status != "pending":
            return await self._settled(order_id)
        lines = [(line.sku, line.quantity) for line in order.lines]
        try:
            allocation = await self.partners.allocate(
                order_id, order.channel, order.policy, lines, order.customer_id
            )
        except Refused as exc:
            await self._abandon(order_id)
            if exc.status_code == 409 and exc.type == "/problems/insufficient-stock":
                raise Refusal(409, "insufficient-stock", exc.detail, extra=exc.extra) from exc
            raise Refusal(
                502, "allocation-refused", f"Availability refused the allocation: {exc.detail}"
            ) from exc
        fulfillments: list[FulfillmentRef] = []
        try:
            for warehouse_id, picks in _by_warehouse(allocation).items():
                created = await self.partners.create_fulfillment(order_id, warehouse_id, picks)
                fulfillments.append(
                    FulfillmentRef(str(created["fulfillment_order_id"]), warehouse_id)
                )
        except Refused as exc:
            await self._undo_release(order_id, fulfillments)
            raise Refusal(
                502, "fulfillment-refused", f"The WMS refused a fulfillment order: {exc.detail}"
            ) from exc
        return await self._complete(order, allocation, fulfillments)

    async def _complete(
        self, order: Order, allocation: dict[str, Any], fulfillments: list[FulfillmentRef]
    ) -> bytes:
        quantities = {
            str(line["sku"]): (int(line.get("allocated", 0)), int(line.get("backordered", 0)))
            for line in allocation.get("lines", [])
        }
        status = "released" if any(a for a, _ in quantities.values()) else "backordered"
        async with self.db.transaction() as tx:
            moved = await repo.release(
                tx.conn,
                order.order_id,
                status=status,
                quantities=quantities,
                fulfillments=fulfillments,
            )
            if moved:
                done = await repo.get(tx.conn, order.order_id)
                assert done is not None
                body = msgspec.json.encode(done)
                origin = await repo.origin(tx.conn, order.order_id)
                assert origin is not None
                await self.idempotency.complete(tx.conn, *origin, 201, body)
                tx.emit(
                    STREAM_ORDERS,
                    new_event(
                        source=EVENT_SOURCE,
                        type_="order.accepted",
                        subject=done.order_id,
                        sequence=done.version,
                        payload=OrderAccepted(
                            order_id=done.order_id,
                            customer_id=done.customer_id,
                            channel=done.channel,
                            status=done.status,
                            lines=[Line(line.sku, line.quantity) for line in done.lines],
                        ),
                    ),
                )
        if not moved:
            return await self._settled(order.order_id)
        return body

    async def _settled(self, order_id: str) -> bytes:
        """Another run (request or resumer) finished or abandoned this order first."""
        async with self.db.read() as conn:
            order = await repo.get(conn, order_id)
        if order is None:
            raise Refusal(409, "order-abandoned", f"Order {order_id} could not be placed.")
        return msgspec.json.encode(order)

    async def _undo_release(self, order_id: str, fulfillments: list[FulfillmentRef]) -> None:
        """Compensation after the WMS refused: cancel what was released, free the stock,
        forget the order. A step that fails leaves the order ``pending`` for the resumer,
        which runs the saga (and so this compensation) again."""
        try:
            for fo in fulfillments:
                await self.partners.cancel_fulfillment(fo.fulfillment_order_id)
            await self.partners.release(order_id)
        except Refused:
            log.exception("compensating order %s failed; the resumer will retry", order_id)
            return
        await self._abandon(order_id)

    async def _abandon(self, order_id: str) -> None:
        """Compensation: nothing of the order stays written, and the key may be reused."""
        async with self.db.transaction() as tx:
            origin = await repo.origin(tx.conn, order_id)
            if await repo.delete_pending(tx.conn, order_id) and origin is not None:
                await self.idempotency.forget(tx.conn, *origin)


def _by_warehouse(allocation: dict[str, Any]) -> dict[str, list[tuple[str, int]]]:
    picks: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for line in allocation.get("lines", []):
        for location in line.get("locations") or []:
            quantity = int(location.get("quantity", 0))
            if quantity > 0:
                picks[str(location["location_id"])][str(line["sku"])] += quantity
    return {warehouse: sorted(by_sku.items()) for warehouse, by_sku in sorted(picks.items())}
