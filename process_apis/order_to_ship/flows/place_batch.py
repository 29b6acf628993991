"""A batch of orders in one call (decision 0055): an EDI partner's purchase-order file,
a marketplace's order feed. Each order is placed as its single ``POST
/orders/v1/orders`` with its own Idempotency-Key would be placed (the same saga steps,
the same keys: either call replays the other's answer) and answered in the batch's
order: its status and order, or the problem its single call would answer. One order's
refusal changes nothing of the others.

The steps of the batch's new orders are taken together (decision 0057): one ERP terms
read per customer (each order's credit check counts the customer's orders ahead of it
in the batch), one transaction writing them ``pending`` with their keys, one
allocation call, one transaction settling them. A key seen before takes the single
saga (replay, or the retry of a pending order); so does every order when the batch's
pending write conflicts with a concurrent request under one of its keys."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec
from sqlalchemy.exc import IntegrityError

from process_apis.order_to_ship.flows.checks import (
    CustomerTerms,
    Terms,
    read_terms,
    refuse_duplicate_skus,
    terms_of,
)
from process_apis.order_to_ship.flows.partners import Refused
from process_apis.order_to_ship.flows.place_order import (
    PlaceOrder,
    log_failure,
    new_order_id,
    not_permitted,
)
from process_apis.order_to_ship.flows.together import Outcome, advance_together
from process_apis.order_to_ship.orders.schemas import (
    Order,
    OrderBatch,
    OrderBatchItemIn,
    OrderBatchResult,
)
from shared.auth.principal import Principal
from shared.idempotency import fingerprint, refuse_repeated_keys
from shared.models import ItemRefusal
from shared.refusals import Refusal

log = logging.getLogger("tally.orders.place")

# Orders of one batch placed by the single saga (keys seen before) in flight at once.
AT_ONCE = 8


@dataclass(slots=True)
class _New:
    """One new order of the batch, from its terms to its answer."""

    at: int  # its place in the batch
    item: OrderBatchItemIn
    fingerprint: str
    terms: Terms
    order_id: str
    pending: Order | None = None


async def place_each(
    place: PlaceOrder, principal: Principal, items: Sequence[OrderBatchItemIn]
) -> OrderBatch:
    refuse_repeated_keys([item.idempotency_key for item in items])
    results: list[OrderBatchResult | None] = [None] * len(items)
    prints = [fingerprint(item.order) for item in items]
    async with place.db.lookup() as conn:
        stored = await place.idempotency.lookup_many(
            conn, [(principal.client_id, item.idempotency_key) for item in items]
        )
    seen = set() if stored is None else {key for _, key in stored}
    fresh: list[int] = []
    one_by_one: list[int] = []
    for at, item in enumerate(items):
        if not principal.may_see_customer(item.order.customer_id):
            results[at] = _refused(item, not_permitted(principal))
        elif item.idempotency_key in seen:
            one_by_one.append(at)
        else:
            fresh.append(at)
    new = await _accepted(place, items, prints, fresh, results)
    try:
        await _write_pending(place, principal, new)
    except IntegrityError:
        # A key of the batch committed meanwhile: each order as its single call would
        # be answered (a replay for that one).
        one_by_one += [n.at for n in new]
        new = []
    await asyncio.gather(
        _advance(place, new, results), _singly(place, principal, items, one_by_one, results)
    )
    assert all(result is not None for result in results)
    return OrderBatch([result for result in results if result is not None])


async def _accepted(
    place: PlaceOrder,
    items: Sequence[OrderBatchItemIn],
    prints: list[str],
    fresh: list[int],
    results: list[OrderBatchResult | None],
) -> list[_New]:
    """The terms of the new orders, one read per customer: the orders accepted (the
    others' refusals in ``results``)."""
    skus_of: dict[str, set[str]] = {}
    for at in fresh:
        order = items[at].order
        skus_of.setdefault(order.customer_id, set()).update(line.sku for line in order.lines)

    async def read(customer_id: str) -> CustomerTerms | Refusal:
        skus = sorted(skus_of[customer_id])
        try:
            return await read_terms(place.partners, place.db.lookup, customer_id, skus)
        except Refused as exc:
            return Refusal(502, "erp-refused", f"The ERP refused a check: {exc.detail}")
        except Refusal as refused:
            return refused

    reads = dict(zip(skus_of, await asyncio.gather(*(read(c) for c in skus_of)), strict=True))
    ahead = dict.fromkeys(skus_of, 0)
    accepted: list[_New] = []
    for at in fresh:
        item = items[at]
        customer = item.order.customer_id
        read_of = reads[customer]
        try:
            if isinstance(read_of, Refusal):
                raise read_of
            refuse_duplicate_skus(item.order)
            terms = terms_of(item.order, read_of, ahead=ahead[customer])
        except Refusal as refused:
            results[at] = _refused(item, refused)
            continue
        ahead[customer] += int(terms.credit["order_value"]["amount_minor"])
        accepted.append(_New(at, item, prints[at], terms, new_order_id()))
    return accepted


async def _write_pending(place: PlaceOrder, principal: Principal, new: list[_New]) -> None:
    if not new:
        return
    async with place.db.transaction() as tx:
        rows = []
        for n in new:
            key = n.item.idempotency_key
            n.pending, row = await place.write_pending_in(
                tx, principal, key, n.fingerprint, n.order_id, n.item.order, n.terms
            )
            rows.append(row)
        await place.idempotency.insert_completed(tx.conn, rows)


async def _advance(
    place: PlaceOrder, new: list[_New], results: list[OrderBatchResult | None]
) -> None:
    """Allocates and settles the new orders within the saga's ``answer_within``; those
    not settled by then are answered 202 (pending) and go on in the background, as a
    single placement's would."""
    if not new:
        return
    settled: dict[str, Outcome] = {}
    task = place.kept(advance_together(place, [n.pending for n in new if n.pending], settled))
    done, _ = await asyncio.wait({task}, timeout=place.answer_within)
    if task not in done:
        task.add_done_callback(log_failure)
    elif (exc := task.exception()) is not None and not _unavailable(exc):
        log.warning("placing a batch of orders: %r", exc)
    for n in new:
        outcome = settled.get(n.order_id)
        if isinstance(outcome, Refusal):
            results[n.at] = _refused(n.item, outcome)
        elif outcome is not None:
            results[n.at] = OrderBatchResult(n.item.idempotency_key, outcome[0], outcome[1])
        else:
            results[n.at] = OrderBatchResult(n.item.idempotency_key, 202, n.pending)


async def _singly(
    place: PlaceOrder,
    principal: Principal,
    items: Sequence[OrderBatchItemIn],
    positions: list[int],
    results: list[OrderBatchResult | None],
) -> None:
    """Orders whose key was seen before: each by the single saga (a replay, a refusal
    of the key, or the retry of an order still pending)."""
    gate = asyncio.Semaphore(AT_ONCE)

    async def one(at: int) -> None:
        item = items[at]
        async with gate:
            try:
                answer = await place.run(principal, item.idempotency_key, item.order)
            except Refusal as refused:
                results[at] = _refused(item, refused)
                return
        body = answer.content
        order = body if isinstance(body, Order) else msgspec.json.decode(body, type=Order)
        results[at] = OrderBatchResult(item.idempotency_key, answer.status_code, order)

    await asyncio.gather(*(one(at) for at in positions))


def _refused(item: OrderBatchItemIn, refusal: Refusal) -> OrderBatchResult:
    return OrderBatchResult(item.idempotency_key, refusal=ItemRefusal.of(refusal))


def _unavailable(exc: BaseException) -> bool:
    """Availability unreachable: the orders stay pending, for the resumer."""
    return isinstance(exc, Refusal) and exc.status == 503
