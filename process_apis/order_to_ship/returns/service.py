"""What the returns routes call, and the one way an RMA's change is committed.

Authorising an RMA locks the order (``orders.repository.lock``) and checks each line
against the order line's ``shipped - returned`` in that transaction, so two concurrent
RMAs of one order can never together pass what shipped. A client bound to a customer
sees and authorises that customer's returns only (another's: the 404 of an unknown id).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import uuid_utils
from litestar import Response
from sqlalchemy import select

from process_apis.order_to_ship.db import orders
from process_apis.order_to_ship.orders import repository as orders_repo
from process_apis.order_to_ship.orders.events import EVENT_SOURCE
from process_apis.order_to_ship.returns import repository as repo
from process_apis.order_to_ship.returns.schemas import Rma, RmaIn, RmaLine
from process_apis.order_to_ship.returns.settings import ReturnsSettings
from process_apis.order_to_ship.returns.states import WMS_STATUS
from shared.auth.principal import Principal
from shared.db import Database, Tx
from shared.events.catalog import STREAM_ORDERS, Line, ReturnAuthorized, ReturnStatusChanged
from shared.events.envelope import Event, new_event
from shared.idempotency import IdempotencyStore
from shared.models import Page
from shared.paging import decode_cursor, keyset_page
from shared.refusals import Refusal


def new_rma_id() -> str:
    return f"RMA-{uuid_utils.uuid7()}"


def subject(rma_id: str) -> str:
    return f"rma:{rma_id}"


def order_not_found(order_id: str) -> Refusal:
    return Refusal(404, "order-not-found", f"No order {order_id}.")


def rma_not_found(rma_id: str) -> Refusal:
    return Refusal(404, "rma-not-found", f"No return {rma_id}.")


async def locked(tx: Tx, rma_id: str) -> tuple[orders_repo.Working, repo.RmaWorking] | None:
    """The RMA's order locked (every RMA change takes it first), then the RMA."""
    order_id = await repo.order_of(tx.conn, rma_id)
    if order_id is None:
        return None
    working = await orders_repo.lock(tx, order_id)
    rma = await repo.load_for_change(tx.conn, rma_id)
    assert working is not None
    assert rma is not None
    return working, rma


async def commit(
    tx: Tx,
    working: orders_repo.Working,
    rma: repo.RmaWorking,
    cause: str,
    *,
    causation: Event | None = None,
    **head_values: Any,
) -> None:
    """Writes the RMA, recounts the order lines' ``returned`` (the order's status stays),
    emits one ``return.status_changed`` per status move and queues the WMS's copy when
    the RMA ended before anything arrived (rejected, expired)."""
    await repo.save(tx.conn, rma, datetime.now(UTC), **head_values)
    if await repo.recount(tx.conn, working):
        await orders_repo.save(tx.conn, working, working.status, cause)
    for _, status, version in rma.moves:
        tx.emit(
            STREAM_ORDERS,
            new_event(
                source=EVENT_SOURCE,
                type_="return.status_changed",
                subject=subject(rma.rma_id),
                sequence=version,
                payload=ReturnStatusChanged(
                    rma_id=rma.rma_id,
                    order_id=rma.order_id,
                    customer_id=str(rma.head.customer_id),
                    status=status,
                ),
                causation=causation,
            ),
        )
        if status in WMS_STATUS:
            await repo.want_registration(tx, rma.rma_id, version)


class ReturnService:
    def __init__(
        self,
        db: Database,
        idempotency: IdempotencyStore,
        settings: ReturnsSettings,
        wake: Callable[[], None],
    ) -> None:
        self.db = db
        self.idempotency = idempotency
        self.settings = settings
        self.wake = wake  # the WMS notifier, once a registration is committed

    # -- authorise ----------------------------------------------------------------
    async def authorize(
        self, principal: Principal, order_id: str, data: RmaIn, key: str
    ) -> Response[Any]:
        wanted: dict[str, int] = {}
        for line in data.lines:
            wanted[line.sku] = wanted.get(line.sku, 0) + line.quantity

        async def effect(tx: Tx) -> tuple[int, Rma]:
            return 201, await self._authorize(tx, principal, order_id, data.reason, wanted)

        response = await self.idempotency.run_once(
            client_id=principal.client_id,
            key=key,
            payload={"order_id": order_id, "return": data},
            effect=effect,
        )
        self.wake()
        return response

    async def _authorize(
        self,
        tx: Tx,
        principal: Principal,
        order_id: str,
        reason: str | None,
        wanted: dict[str, int],
    ) -> Rma:
        working = await orders_repo.lock(tx, order_id)
        if working is None or not principal.may_see_customer(str(working.head.customer_id)):
            raise order_not_found(order_id)
        for sku in sorted(wanted):
            if sku not in working.lines:
                raise Refusal(
                    422,
                    "not-on-order",
                    f"Order {order_id} has no line for {sku}.",
                    extra={"sku": sku},
                )
        for sku, requested in sorted(wanted.items()):
            line = working.lines[sku]
            if requested > line.shipped - line.returned:
                raise Refusal(
                    409,
                    "return-exceeds-shipped",
                    f"{requested} {sku} asked back; {line.shipped} shipped, {line.returned} "
                    f"already returned or authorised.",
                    extra={
                        "sku": sku,
                        "shipped": line.shipped,
                        "returned": line.returned,
                        "requested": requested,
                    },
                )
        rma_id = new_rma_id()
        now = datetime.now(UTC)
        expires_at = now + self.settings.window
        customer_id = str(working.head.customer_id)
        await repo.insert_rma(
            tx.conn,
            rma_id=rma_id,
            order_id=order_id,
            customer_id=customer_id,
            reason=reason,
            lines=wanted,
            expires_at=expires_at,
            client_id=principal.client_id,
            now=now,
        )
        await repo.recount(tx.conn, working)
        await orders_repo.save(tx.conn, working, working.status, "return_authorized")
        await repo.want_registration(tx, rma_id, 1)
        tx.emit(
            STREAM_ORDERS,
            new_event(
                source=EVENT_SOURCE,
                type_="return.authorized",
                subject=subject(rma_id),
                sequence=1,
                payload=ReturnAuthorized(
                    rma_id=rma_id,
                    order_id=order_id,
                    customer_id=customer_id,
                    lines=[Line(sku, quantity) for sku, quantity in sorted(wanted.items())],
                    expires_at=expires_at.isoformat(),
                ),
            ),
        )
        return Rma(
            rma_id=rma_id,
            order_id=order_id,
            customer_id=customer_id,
            status="authorized",
            reason=reason,
            lines=[RmaLine(sku, quantity) for sku, quantity in sorted(wanted.items())],
            expires_at=expires_at,
            created_at=now,
            updated_at=now,
        )

    # -- reads ----------------------------------------------------------------------
    async def get(self, principal: Principal, rma_id: str) -> Rma:
        async with self.db.read() as conn:
            found = await repo.get(conn, rma_id)
        if found is None or not principal.may_see_customer(found.customer_id):
            raise rma_not_found(rma_id)
        return found

    async def of_order(
        self, principal: Principal, order_id: str, cursor: str | None, limit: int
    ) -> Page[Rma]:
        async with self.db.read() as conn:
            customer_id = await conn.scalar(
                select(orders.c.customer_id).where(orders.c.order_id == order_id)
            )
            if customer_id is None or not principal.may_see_customer(str(customer_id)):
                raise order_not_found(order_id)
            found = await repo.of_order(conn, order_id, decode_cursor(cursor), limit + 1)
        return keyset_page(found, limit, key=lambda rma: rma.rma_id)

    async def list(
        self,
        principal: Principal,
        *,
        order_ids: tuple[str, ...],
        statuses: tuple[str, ...],
        customer_id: str | None,
        cursor: str | None,
        limit: int,
        count: bool = False,
    ) -> Page[Rma]:
        """RMAs by rma_id; a bound client's list holds its own customer's only (another
        customer named: an empty page; RMAs of another's orders are left out)."""
        if principal.customer_id is not None:
            if customer_id not in (None, principal.customer_id):
                return Page([], None, 0) if count else Page([], None)
            customer_id = principal.customer_id
        async with self.db.read() as conn:
            found = await repo.page(
                conn,
                order_ids=order_ids,
                statuses=statuses,
                customer_id=customer_id,
                after=decode_cursor(cursor),
                limit=limit + 1,
            )
            total = (
                await repo.count(
                    conn, order_ids=order_ids, statuses=statuses, customer_id=customer_id
                )
                if count
                else None
            )
        page = keyset_page(found, limit, key=lambda rma: rma.rma_id)
        if total is not None:
            page.total_count = total
        return page

    # -- staff ----------------------------------------------------------------------
    async def reject(self, principal: Principal, rma_id: str, reason: str) -> Rma:
        """Only an ``authorized`` RMA (nothing received yet); rejecting a rejected one
        answers it unchanged; any other state is 409 ``illegal-transition``."""
        async with self.db.transaction() as tx:
            found = await locked(tx, rma_id)
            if found is None or not principal.may_see_customer(str(found[1].head.customer_id)):
                raise rma_not_found(rma_id)
            working, rma = found
            if rma.status != "rejected":
                rma.move("rejected")
                await commit(tx, working, rma, "return_rejected", rejection_reason=reason)
        self.wake()
        return await self.get(principal, rma_id)
