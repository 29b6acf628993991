"""Many orders placed together, each as its single ``POST /orders/v1/orders`` with its
own Idempotency-Key would be placed (the same saga steps, the same keys: either call
replays the other's answer): an EDI partner's purchase-order file or a marketplace's
feed in one call (decision 0055), and concurrent single placements taken together
(``flows/placement_queue.py``, decision 0060). Each order is answered as its single
call would be: its status and order, or the problem. One order's refusal changes
nothing of the others.

The steps of the new orders are taken together (decision 0057): one ERP terms read per
customer (each order's credit check counts the customer's orders ahead of it), one
transaction writing them ``pending`` with their keys (``write_new``), one allocation
call, one transaction settling them (``finish``). A key seen before takes the single
saga (replay, or the retry of a pending order); so does every order when the pending
write conflicts with a concurrent request under one of its keys."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
from litestar import Response
from sqlalchemy.exc import IntegrityError

from process_apis.order_to_ship.flows.checks import (
    CustomerTerms,
    Terms,
    read_terms,
    read_terms_many,
    refuse_duplicate_skus,
    terms_of,
)
from process_apis.order_to_ship.flows.partners import Refused
from process_apis.order_to_ship.flows.place_order import (
    Pending,
    PlaceOrder,
    log_failure,
    new_order_id,
    not_permitted,
)
from process_apis.order_to_ship.flows.together import Outcome, advance_together, correlated
from process_apis.order_to_ship.orders.schemas import (
    Order,
    OrderBatch,
    OrderBatchItemIn,
    OrderBatchResult,
    OrderIn,
)
from shared.auth.principal import Principal
from shared.idempotency import fingerprint, refuse_repeated_keys
from shared.models import ItemRefusal
from shared.refusals import Refusal

log = logging.getLogger("tally.orders.place")

# Orders placed by the single saga (keys seen before) in flight at once.
AT_ONCE = 8

# An order's answer: placed (201, or 202 pending), the single saga's response (a key
# seen before), or the refusal or failure its single call would raise.
Answer = tuple[int, Order] | Response[Any] | Exception


@dataclass(frozen=True, slots=True)
class Placement:
    """One order to place: who asks, under which key; the correlation id of its
    request when the order is placed beside others' (``flows/placement_queue.py``)."""

    principal: Principal
    key: str
    order: OrderIn
    correlation_id: str | None = None


@dataclass(slots=True)
class _New:
    """One new order, from its terms to its answer."""

    at: int  # its place among the placements
    placement: Placement
    fingerprint: str
    terms: Terms
    order_id: str
    pending: Order | None = None


@dataclass(slots=True)
class Written:
    """The placements after ``write_new``: the answers known already, the new orders
    written ``pending``, the placements left to the single saga."""

    answers: list[Answer | None]
    new: list[_New] = field(default_factory=list)
    singly: list[int] = field(default_factory=list)


async def place_each(
    place: PlaceOrder, principal: Principal, items: Sequence[OrderBatchItemIn]
) -> OrderBatch:
    """``POST /orders/v1/orders/batch``: one client's orders, each under its own key."""
    refuse_repeated_keys([item.idempotency_key for item in items])
    placements = [Placement(principal, item.idempotency_key, item.order) for item in items]
    written = await write_new(place, placements)
    answers = await finish(place, placements, written)
    return OrderBatch(
        [_result(p.key, answer) for p, answer in zip(placements, answers, strict=True)]
    )


async def write_new(place: PlaceOrder, placements: Sequence[Placement]) -> Written:
    """The checks of the placements, and their new orders written ``pending`` with their
    keys in one transaction. Each (client, key) appears once among ``placements``."""
    written = Written([None] * len(placements))
    async with place.db.lookup() as conn:
        stored = await place.idempotency.lookup_many(
            conn, [(p.principal.client_id, p.key) for p in placements]
        )
    seen = set() if stored is None else set(stored)
    fresh: list[int] = []
    for at, p in enumerate(placements):
        if not p.principal.may_see_customer(p.order.customer_id):
            written.answers[at] = not_permitted(p.principal)
        elif (p.principal.client_id, p.key) in seen:
            written.singly.append(at)
        else:
            fresh.append(at)
    new = await _accepted(place, placements, fresh, written.answers)
    try:
        await _write_pending(place, new)
    except IntegrityError:
        # A key committed meanwhile: each order as its single call would be answered
        # (a replay for that one).
        written.singly += [n.at for n in new]
        new = []
    written.new = new
    return written


async def finish(
    place: PlaceOrder, placements: Sequence[Placement], written: Written
) -> list[Answer]:
    """Every placement's answer: the new orders allocated and settled together, the
    others by the single saga."""
    await asyncio.gather(
        _advance(place, written), _singly(place, placements, written.singly, written.answers)
    )
    answers = written.answers
    assert all(answer is not None for answer in answers)
    return [answer for answer in answers if answer is not None]


async def _accepted(
    place: PlaceOrder,
    placements: Sequence[Placement],
    fresh: list[int],
    answers: list[Answer | None],
) -> list[_New]:
    """The terms of the new orders, one read per customer: the orders accepted (the
    others' refusals in ``answers``)."""
    skus_of: dict[str, set[str]] = {}
    for at in fresh:
        order = placements[at].order
        skus_of.setdefault(order.customer_id, set()).update(line.sku for line in order.lines)

    reads = await _terms_by_customer(place, {c: sorted(s) for c, s in skus_of.items()})
    ahead = dict.fromkeys(skus_of, 0)
    accepted: list[_New] = []
    for at in fresh:
        p = placements[at]
        customer = p.order.customer_id
        read_of = reads[customer]
        try:
            if isinstance(read_of, Refusal):
                raise read_of
            refuse_duplicate_skus(p.order)
            terms = terms_of(p.order, read_of, ahead=ahead[customer])
        except Refusal as refused:
            answers[at] = refused
            continue
        ahead[customer] += int(terms.credit["order_value"]["amount_minor"])
        accepted.append(_New(at, p, fingerprint(p.order), terms, new_order_id()))
    return accepted


async def _terms_by_customer(
    place: PlaceOrder, skus_of: dict[str, list[str]]
) -> dict[str, CustomerTerms | Refusal]:
    """Each customer's terms, or the refusal each of its orders gets: one customer by
    its own GET, several in one batch call (decision 0061)."""
    if not skus_of:
        return {}
    try:
        if len(skus_of) == 1:
            ((customer_id, skus),) = skus_of.items()
            return {
                customer_id: await read_terms(place.partners, place.db.lookup, customer_id, skus)
            }
        return await read_terms_many(place.partners, place.db.lookup, skus_of)
    except Refused as exc:
        refused = Refusal(502, "erp-refused", f"The ERP refused a check: {exc.detail}")
        return dict.fromkeys(skus_of, refused)
    except Refusal as refusal:  # an unknown customer (one), the ERP away (503)
        return dict.fromkeys(skus_of, refusal)


async def _write_pending(place: PlaceOrder, new: list[_New]) -> None:
    if not new:
        return
    pending = [
        Pending(
            n.placement.principal,
            n.placement.key,
            n.fingerprint,
            n.order_id,
            n.placement.order,
            n.terms,
            n.placement.correlation_id,
        )
        for n in new
    ]
    async with place.db.transaction() as tx:
        written = await place.write_all_pending_in(tx, pending)
        for n, (order, _) in zip(new, written, strict=True):
            n.pending = order
        await place.idempotency.insert_completed(tx.conn, [row for _, row in written])


async def _advance(place: PlaceOrder, written: Written) -> None:
    """Allocates and settles the new orders within the saga's ``answer_within``; those
    not settled by then are answered 202 (pending) and go on in the background, as a
    single placement's would."""
    new = written.new
    if not new:
        return
    settled: dict[str, Outcome] = {}
    correlations = {
        n.order_id: n.placement.correlation_id for n in new if n.placement.correlation_id
    }
    pending = [n.pending for n in new if n.pending]
    task = place.kept(advance_together(place, pending, settled, correlations))
    done, _ = await asyncio.wait({task}, timeout=place.answer_within)
    if task not in done:
        task.add_done_callback(log_failure)
    elif (exc := task.exception()) is not None and not _unavailable(exc):
        log.warning("placing orders together: %r", exc)
    for n in new:
        outcome = settled.get(n.order_id)
        if outcome is not None:
            written.answers[n.at] = outcome
        else:
            assert n.pending is not None
            written.answers[n.at] = (202, n.pending)


async def _singly(
    place: PlaceOrder,
    placements: Sequence[Placement],
    positions: list[int],
    answers: list[Answer | None],
) -> None:
    """Orders whose key was seen before: each by the single saga (a replay, a refusal
    of the key, or the retry of an order still pending)."""
    gate = asyncio.Semaphore(AT_ONCE)

    async def one(at: int) -> None:
        p = placements[at]
        async with gate:
            try:
                with correlated(p.correlation_id):
                    answers[at] = await place.run(p.principal, p.key, p.order)
            except Exception as exc:  # its single call's failure is its answer
                answers[at] = exc

    await asyncio.gather(*(one(at) for at in positions))


def _result(key: str, answer: Answer) -> OrderBatchResult:
    if isinstance(answer, Refusal):
        return OrderBatchResult(key, refusal=ItemRefusal.of(answer))
    if isinstance(answer, Exception):
        raise answer
    if isinstance(answer, Response):
        body = answer.content
        order = body if isinstance(body, Order) else msgspec.json.decode(body, type=Order)
        return OrderBatchResult(key, answer.status_code, order)
    return OrderBatchResult(key, answer[0], answer[1])


def _unavailable(exc: BaseException) -> bool:
    """Availability unreachable: the orders stay pending, for the resumer."""
    return isinstance(exc, Refusal) and exc.status == 503
