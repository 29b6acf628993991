"""Filling an allocation's backorders (decision 0030): more is allocated to its
backordered lines under the allocation's own policy, channel and customer group, with
the planner, warehouse strategy and ring-fences of a new allocation, on positions
locked in sorted order, in one transaction. ``ship_complete`` fills every requested
unit or none; ``partial`` and ``reject`` fill what there is."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from process_apis.availability import clock
from process_apis.availability.allocations import repository as repo
from process_apis.availability.allocations.schemas import Fill, FilledLine, FillIn, FillLineIn
from process_apis.availability.allocations.service import (
    emit_allocated,
    not_found,
    plan_under_rules,
    shortfalls,
)
from process_apis.availability.ownership import visible_to
from process_apis.availability.positions.book import PositionBook
from process_apis.availability.positions.ledger import SOURCE, Cause
from process_apis.availability.rules.allowance import Buyer
from process_apis.availability.schemas import Allocation
from shared.db import Tx
from shared.refusals import Refusal


@dataclass(frozen=True, slots=True)
class Want:
    """Units to fill on one line of the allocation (1-based ``line_no``)."""

    line_no: int
    sku: str
    quantity: int


def released_refusal(allocation_id: str) -> Refusal:
    return Refusal(
        409, "allocation-released", f"Allocation {allocation_id} is released; nothing changed."
    )


async def open_allocation(conn: Any, allocation_id: str, bound_to: str | None) -> Allocation:
    """The allocation, its row locked, for a change of its lines: 404 when unknown or
    another customer's (the same answer), 409 once released."""
    head = await repo.locked_header(conn, "allocation_id", allocation_id)
    if head is None or not visible_to(bound_to, head.customer_id):
        raise not_found(allocation_id)
    if head.status == "released":
        raise released_refusal(allocation_id)
    current = await repo.load(conn, allocation_id)
    assert current is not None
    return current


def duplicate_skus(skus: Sequence[str]) -> None:
    twice = sorted({sku for sku in skus if skus.count(sku) > 1})
    if twice:
        raise Refusal(422, "duplicate-line", f"Name each sku once; repeated: {', '.join(twice)}.")


def wanted(current: Allocation, asked: list[FillLineIn] | None) -> list[Want]:
    """What to fill per line: the whole backorder of every line, or the asked units
    of each sku spread over its lines in order (422 beyond their backorder)."""
    numbered = list(enumerate(current.lines, start=1))
    if asked is None:
        return [Want(n, x.sku, x.backordered) for n, x in numbered if x.backordered > 0]
    duplicate_skus([ask.sku for ask in asked])
    wants: list[Want] = []
    errors: list[dict[str, object]] = []
    for ask in asked:
        mine = [(n, x) for n, x in numbered if x.sku == ask.sku]
        backordered = sum(x.backordered for _, x in mine)
        if ask.quantity > backordered:
            errors.append({"sku": ask.sku, "requested": ask.quantity, "backordered": backordered})
            continue
        left = ask.quantity
        for n, x in mine:
            take = min(x.backordered, left)
            if take:
                wants.append(Want(n, x.sku, take))
                left -= take
    if errors:
        raise Refusal(
            422,
            "fill-exceeds-backorder",
            "A line asks to fill more than it has backordered; nothing was filled.",
            extra={"errors": errors},
        )
    return wants


async def fill(
    tx: Tx, allocation_id: str, data: FillIn, idempotency_key: str, *, bound_to: str | None
) -> Fill:
    conn = tx.conn
    current = await open_allocation(conn, allocation_id, bound_to)
    wants = wanted(current, data.lines)
    if not wants:
        return Fill(allocation=current, filled=[])

    skus = [want.sku for want in wants]
    exhausted: set[str] = tx.prefetched.setdefault(_EXHAUSTED, set())
    if exhausted.issuperset(skus):
        return Fill(allocation=current, filled=[])
    now = clock.now()
    book = await PositionBook.lock(conn, skus, now=now)
    buyer = Buyer(current.channel, current.customer_group)
    plan = await plan_under_rules(conn, book, wants, buyer, data.ship_to, now)
    if current.policy == "ship_complete" and shortfalls(wants, plan):
        exhausted.update(_none_left(book, skus))
        return Fill(allocation=current, filled=[])

    cause = Cause("backorder_fill", SOURCE, allocation_id, idempotency_key)
    claims: repo.Claims = {}
    for want, takes in zip(wants, plan, strict=True):
        for key, quantity in takes:
            if not await book.apply(
                conn, key, {"allocated": quantity}, cause, now=now, require_atp=quantity
            ):
                raise Refusal(
                    409, "insufficient-stock", "Stock changed while filling; nothing was filled."
                )
            _, before = claims.get((want.line_no, key.location_id), (key.sku, 0))
            claims[(want.line_no, key.location_id)] = (key.sku, before + quantity)
    exhausted.update(_none_left(book, skus))
    if not claims:
        return Fill(allocation=current, filled=[])

    await repo.add_claims(conn, allocation_id, claims)
    await repo.set_status(conn, allocation_id, await repo.settled_status(conn, allocation_id), now)
    result = await repo.load(conn, allocation_id)
    assert result is not None
    emit_allocated(tx, result, claims)
    return Fill(allocation=result, filled=filled_of(claims))


# ``Tx.prefetched`` key: the skus a fill of this transaction left no stock of at any
# position. Fills only take stock, so a later fill in the same transaction (a batch of
# them, oldest order first) wanting only those skus fills nothing: it is answered so
# without reading and planning the positions again.
_EXHAUSTED = ("fills", "exhausted-skus")


def _none_left(book: PositionBook, skus: list[str]) -> list[str]:
    left = dict.fromkeys(skus, 0)
    for key in book.values:
        if key.sku in left:
            left[key.sku] += max(0, book.atp(key))
    return [sku for sku, atp in left.items() if atp == 0]


def filled_of(claims: repo.Claims) -> list[FilledLine]:
    """The claims made, per sku and location."""
    total: dict[tuple[str, str], int] = {}
    for (_, location_id), (sku, quantity) in claims.items():
        total[(sku, location_id)] = total.get((sku, location_id), 0) + quantity
    return [FilledLine(sku, location_id, q) for (sku, location_id), q in sorted(total.items())]
