"""The place-order saga (decision 0026). Order intake never waits on the WMS.

1. acceptance checks with the ERP (``flows/checks.py``): a refusal is 422, an ERP that
   cannot answer 503; nothing is written either way;
2. one transaction: the order ``pending`` and its Idempotency-Key completed with a 202
   that names it, so from here on a retry with the key gets this order at once;
3. allocate with availability (``alloc:{order_id}``), or convert the customer's cart
   hold (``convert:{order_id}``); a definite refusal (insufficient stock under
   ``reject``, a hold that lapsed) deletes the order and forgets the key in one
   transaction; availability unreachable, or still silent after ``answer_within``
   seconds, leaves it ``pending`` and answers the 202 (the step goes on in the
   background; the resumer finishes what it could not);
4. one transaction: lines allocated/backordered, the warehouse releases queued (the
   releaser sends them), the status (``on_hold`` over the credit limit), the stored
   answer replaced by the 201, ``order.accepted`` in the outbox.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import msgspec
import uuid_utils
from litestar import Response
from sqlalchemy.exc import IntegrityError

from process_apis.order_to_ship.flows import changes
from process_apis.order_to_ship.flows.checks import Terms, accept
from process_apis.order_to_ship.flows.partners import Partners, Refused
from process_apis.order_to_ship.orders import reads
from process_apis.order_to_ship.orders import repository as repo
from process_apis.order_to_ship.orders.events import EVENT_SOURCE
from process_apis.order_to_ship.orders.schemas import Order, OrderIn
from shared.auth.principal import Principal
from shared.db import Database, Tx
from shared.events.catalog import STREAM_ORDERS, Line, OrderAccepted
from shared.events.envelope import new_event
from shared.idempotency import IdempotencyStore, fingerprint, replay
from shared.problems import ProblemError
from shared.refusals import Refusal

log = logging.getLogger("tally.orders.place")

T = TypeVar("T")


def new_order_id() -> str:
    return f"ORD-{uuid_utils.uuid7()}"


class Wakeable(Protocol):
    """Something a committed change may wake (the releaser)."""

    def wake(self) -> None: ...


class _Nobody:
    def wake(self) -> None:
        return None


@dataclass(frozen=True, slots=True)
class Pending:
    """An order to write ``pending``: who placed it under which key, and its terms."""

    principal: Principal
    key: str
    fingerprint: str
    order_id: str
    data: OrderIn
    terms: Terms
    correlation_id: str | None = None  # its request's (None: the running context's)

    def new_order(self) -> repo.NewOrder:
        data, terms = self.data, self.terms
        return repo.NewOrder(
            order_id=self.order_id,
            customer_id=data.customer_id,
            channel=data.channel,
            policy=data.policy,
            currency=terms.currency,
            lines=[(line.sku, line.quantity, terms.prices[line.sku]) for line in data.lines],
            client_id=self.principal.client_id,
            idempotency_key=self.key,
            ship_to=terms.ship_to,
            customer_group=terms.customer_group,
            hold_id=data.hold_id,
            credit=terms.credit,
            on_hold=terms.over_limit,
            correlation_id=self.correlation_id,
        )


class PlaceOrder:
    def __init__(
        self,
        db: Database,
        idempotency: IdempotencyStore,
        partners: Partners,
        releaser: Wakeable | None = None,
        *,
        answer_within: float = 5.0,
    ) -> None:
        self.db = db
        self.idempotency = idempotency
        self.partners = partners
        self.releaser: Wakeable = releaser or _Nobody()
        self.answer_within = answer_within
        self._running: set[asyncio.Future[Any]] = set()

    # -- the request ---------------------------------------------------------------
    async def run(self, principal: Principal, key: str, data: OrderIn) -> Response[Any]:
        if not principal.may_see_customer(data.customer_id):
            raise not_permitted(principal)
        fp = fingerprint(data)
        async with self.db.lookup() as conn:
            found = await self.idempotency.stored_answer(conn, principal.client_id, key, fp)
        if found is not None:
            return await self._retried(found)
        try:
            terms = await accept(self.partners, self.db.lookup, data)
        except Refused as exc:
            raise Refusal(502, "erp-refused", f"The ERP refused a check: {exc.detail}") from exc
        order_id = new_order_id()
        try:
            # The key was not found just before; a request with the same key that
            # committed since makes the key's insert conflict, and is replayed.
            async with self.db.transaction() as tx:
                pending, row = await self.write_pending_in(
                    tx, principal, key, fp, order_id, data, terms
                )
                await self.idempotency.insert_completed(tx.conn, [row])
        except IntegrityError:
            # The same key committed concurrently: answer as that request is answered.
            found = await self.idempotency.replay_committed(principal.client_id, key, fp)
            if found is None:
                raise
            return found
        try:
            body = await self._advance_within(order_id, known=pending)
        except ProblemError as exc:
            if exc.status_code != 503:
                raise
            body = None
        if body is None:
            # Availability cannot answer now: the order is kept and named; the resumer
            # allocates it, and the same key answers it meanwhile.
            return Response(
                msgspec.json.encode(pending), status_code=202, media_type="application/json"
            )
        return Response(body, status_code=201, media_type="application/json")

    async def _retried(self, found: Response[Any]) -> Response[Any]:
        """A retry of an order answered 202 (still ``pending``): this retry tries to
        allocate it again at once rather than wait for the resumer; the same order
        either way."""
        if found.status_code != 202 or not isinstance(found.content, bytes):
            return found
        order_id = str(msgspec.json.decode(found.content)["order_id"])
        try:
            # A short budget: a retry is answered at once, allocated or still pending.
            body = await self._advance_within(order_id, min(1.0, self.answer_within))
        except ProblemError as exc:
            if exc.status_code != 503:
                raise
            return found
        return found if body is None else replay(201, body)

    async def _advance_within(
        self, order_id: str, budget: float | None = None, *, known: Order | None = None
    ) -> bytes | None:
        """``advance``, or None when it has not finished within ``answer_within`` (a
        frozen availability: its calls time out after 10 s, four times): it goes on in
        the background, so the caller gets its 202 before a gateway's 504."""
        task = self.kept(self.advance(order_id, known=known))
        done, _ = await asyncio.wait({task}, timeout=budget or self.answer_within)
        if task in done:
            return task.result()
        task.add_done_callback(log_failure)
        return None

    def kept(self, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """``work`` as a task this saga holds until it ends (a step that goes on after
        its request was answered must not be collected)."""
        task = asyncio.ensure_future(work)
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return task

    async def write_pending_in(
        self,
        tx: Tx,
        principal: Principal,
        key: str,
        fp: str,
        order_id: str,
        data: OrderIn,
        terms: Terms,
    ) -> tuple[Order, dict[str, Any]]:
        """Writes the order ``pending`` in ``tx``; the order, and its key's record (the
        202 naming it) for the caller to insert in the same transaction."""
        pending = Pending(principal, key, fp, order_id, data, terms)
        (written,) = await self.write_all_pending_in(tx, [pending])
        return written

    async def write_all_pending_in(
        self, tx: Tx, pending: Sequence[Pending]
    ) -> list[tuple[Order, dict[str, Any]]]:
        """``write_pending_in`` for many orders, in three statements."""
        news = [p.new_order() for p in pending]
        at = await repo.insert_pending(tx.conn, *news)
        written = []
        for p, new in zip(pending, news, strict=True):
            order = reads.as_placed(new, at)
            row, _ = self.idempotency.completed_record(
                p.principal.client_id,
                p.key,
                p.fingerprint,
                202,
                msgspec.json.encode(order),
                resource_id=p.order_id,
                now=order.created_at,
            )
            written.append((order, row))
        return written

    # -- the idempotent steps (request and resumer) ---------------------------------
    async def advance(self, order_id: str, *, known: Order | None = None) -> bytes:
        """Allocate and settle a ``pending`` order; the settled order's body. ``known``:
        the order as the caller just wrote it (not read again)."""
        order = known
        if order is None:
            async with self.db.lookup() as conn:
                order = await reads.get(conn, order_id)
        if order is None or order.status != "pending":
            return await self._settled(order_id)
        try:
            allocation = await self._allocate(order)
        except Refused as exc:
            await self.abandon(order_id)
            raise refusal_of(exc) from exc
        return await self._settle(order, allocation)

    async def _allocate(self, order: Order) -> dict[str, Any]:
        if order.hold_id is not None:
            await self._check_hold(order)
            return await self.partners.convert_hold(order.hold_id, order.order_id)
        return await self.partners.allocate(order.order_id, allocation_body(order))

    async def _check_hold(self, order: Order) -> None:
        assert order.hold_id is not None
        hold = await self.partners.hold(order.hold_id)
        if hold is None or hold.get("customer_id") != order.customer_id:
            await self.abandon(order.order_id)
            raise Refusal(
                422, "unknown-hold", f"Customer {order.customer_id} has no hold {order.hold_id}."
            )
        held: dict[str, int] = {}
        for line in hold.get("lines", []):
            held[str(line["sku"])] = held.get(str(line["sku"]), 0) + int(line["quantity"])
        wanted = {line.sku: line.quantity for line in order.lines}
        if held != wanted:
            await self.abandon(order.order_id)
            raise Refusal(
                422,
                "hold-mismatch",
                f"Hold {order.hold_id} holds {held}; the order asks for {wanted}. "
                "An order converts a hold as it is.",
            )

    async def _settle(self, order: Order, allocation: dict[str, Any]) -> bytes:
        async with self.db.transaction() as tx:
            done = await self.settle_in(tx, order.order_id, allocation)
        if done is None:
            return await self._settled(order.order_id)
        self.releaser.wake()
        return done[1]

    async def settle_in(
        self, tx: Tx, order_id: str, allocation: dict[str, Any]
    ) -> tuple[Order, bytes] | None:
        """Settles a ``pending`` order with its ``allocation`` in ``tx``: the settled
        order and its body, or None when another run settled or abandoned it first.
        The caller wakes the releaser after the commit."""
        planned = {
            str(line["sku"]): (int(line.get("allocated", 0)), int(line.get("backordered", 0)))
            for line in allocation.get("lines", [])
        }
        located = [
            {"sku": line["sku"], **claim}
            for line in allocation.get("lines", [])
            for claim in line.get("locations") or []
        ]
        working = await repo.lock(tx, order_id)
        if working is None or working.status != "pending":
            return None
        moved = await self._plan(tx, working, planned, located)
        done = reads.as_saved(working, releases_pending=moved)
        body = msgspec.json.encode(done)
        origin = (working.head.client_id, working.head.idempotency_key)
        await self.idempotency.complete(tx.conn, *origin, 201, body)
        tx.emit(STREAM_ORDERS, _accepted_event(done))
        return done, body

    async def _plan(
        self,
        tx: Any,
        working: repo.Working,
        planned: dict[str, tuple[int, int]],
        located: list[dict[str, Any]],
    ) -> int:
        """Plans the lines and settles the status; returns how many releases it queued."""
        for sku, line in working.lines.items():
            allocated, backordered = planned.get(sku, (0, line.unplanned))
            working.line(sku).plan(allocated, backordered)
        if working.head.hold_reason == "credit":
            await changes.commit(tx, working, "credit_hold", status="on_hold", announce=False)
            return 0
        queued = await changes.queue_releases(tx, working.order_id, located, first=True)
        working.status = "accepted"  # no longer pending: the lines decide from here
        await changes.commit(
            tx, working, "accepted", status=changes.next_status(working), announce=False
        )
        return queued

    async def _settled(self, order_id: str) -> bytes:
        """Another run (request or resumer) finished or abandoned this order first."""
        return msgspec.json.encode(await self.settled(order_id))

    async def settled(self, order_id: str) -> Order:
        async with self.db.lookup() as conn:
            order = await reads.get(conn, order_id)
        if order is None:
            raise Refusal(409, "order-abandoned", f"Order {order_id} could not be placed.")
        return order

    async def abandon(self, order_id: str) -> None:
        """A definite refusal: nothing of the order stays written, the key may be reused."""
        async with self.db.transaction() as tx:
            origin = await repo.origin(tx.conn, order_id)
            if await repo.delete_pending(tx.conn, order_id) and origin is not None:
                await self.idempotency.forget(tx.conn, *origin)


def not_permitted(principal: Principal) -> Refusal:
    # Decided from the token alone, before any lookup: the same answer whether the
    # other customer exists or not (ADR 0014).
    return Refusal(
        403,
        "customer-not-permitted",
        f"This client may place orders for customer {principal.customer_id} only.",
    )


def log_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.warning("placing an order in the background: %r", exc)


def allocation_body(order: Order) -> dict[str, Any]:
    """What availability is asked to allocate for ``order`` (its key: ``alloc:{order_id}``)."""
    body: dict[str, Any] = {
        "channel": order.channel,
        "policy": order.policy,
        "lines": [{"sku": line.sku, "quantity": line.quantity} for line in order.lines],
        # The allocation is the order's customer's: bound clients see their own.
        "customer_id": order.customer_id,
    }
    if order.customer_group:
        body["customer_group"] = order.customer_group
    if order.ship_to and order.ship_to.region:
        body["ship_to"] = order.ship_to.region
    return body


def refusal_of(exc: Refused) -> Refusal:
    if exc.status_code == 409 and exc.type == "/problems/insufficient-stock":
        return Refusal(409, "insufficient-stock", exc.detail, extra=exc.extra)
    if exc.status_code in (404, 409) and "hold" in exc.type:
        return Refusal(409, "hold-not-active", f"The cart hold cannot be converted: {exc.detail}")
    return Refusal(502, "allocation-refused", f"Availability refused the allocation: {exc.detail}")


def _accepted_event(order: Order) -> Any:
    return new_event(
        source=EVENT_SOURCE,
        type_="order.accepted",
        subject=order.order_id,
        sequence=order.version,
        payload=OrderAccepted(
            order_id=order.order_id,
            customer_id=order.customer_id,
            channel=order.channel,
            status=order.status,
            lines=[Line(line.sku, line.quantity) for line in order.lines],
        ),
    )
