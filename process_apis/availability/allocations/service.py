"""Allocating and releasing stock for an order: all lines in one transaction, each
increment a conditional UPDATE that re-checks ATP in SQL, so concurrent allocations
can never promise more than there is."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from process_apis.availability import clock
from process_apis.availability.allocations import repository as repo
from process_apis.availability.allocations.planner import Line, Plan, plan_allocation, planned
from process_apis.availability.ownership import visible_to
from process_apis.availability.positions.book import PositionBook
from process_apis.availability.positions.ledger import (
    SOURCE,
    Cause,
    PositionKey,
    emit_replenished,
)
from process_apis.availability.rules.allowance import (
    Buyer,
    channel_view,
    eligible_available,
    load_terms,
)
from process_apis.availability.schemas import Allocation, AllocationIn
from process_apis.availability.strategies.repository import geography, strategy_of
from shared.db import Tx
from shared.events.catalog import (
    STREAM_AVAILABILITY,
    InventoryAllocated,
    InventoryReleased,
    LocatedLine,
)
from shared.events.envelope import new_event
from shared.refusals import Refusal

log = logging.getLogger("tally.availability")


def not_found(allocation_id: str) -> Refusal:
    """Also the answer for another customer's allocation (ADR 0014): the same body."""
    return Refusal(404, "allocation-not-found", f"No allocation {allocation_id}.")


def _stock_changed() -> Refusal:
    return Refusal(
        409, "insufficient-stock", "Stock changed while allocating; nothing was allocated."
    )


async def allocate(tx: Tx, data: AllocationIn, idempotency_key: str) -> Allocation:
    """Allocates the order's lines in the caller's transaction (the batcher runs
    several, each in a savepoint), under the channel's rules and warehouse strategy."""
    conn = tx.conn
    now = clock.now()
    allocation_id = data.order_id
    await repo.insert_header(conn, allocation_id, data.channel, data.policy, now, data.customer_id)

    skus = [line.sku for line in data.lines]
    book = await PositionBook.lock(conn, skus, now=now)
    plan = await plan_under_rules(
        conn, book, data.lines, Buyer(data.channel, data.customer_group), data.ship_to, now
    )
    short = shortfalls(data.lines, plan)
    if short and data.policy == "reject":
        raise insufficient_stock(short)
    if short and data.policy == "ship_complete":
        plan = [[] for _ in plan]

    cause = Cause("allocation", SOURCE, allocation_id, idempotency_key)
    claims: repo.Claims = {}
    for line_no, takes in enumerate(plan, start=1):
        for key, quantity in takes:
            if not await book.apply(
                conn, key, {"allocated": quantity}, cause, now=now, require_atp=quantity
            ):
                raise _stock_changed()
            _, before = claims.get((line_no, key.location_id), (key.sku, 0))
            claims[(line_no, key.location_id)] = (key.sku, before + quantity)

    demands = [(line.sku, line.quantity) for line in data.lines]
    await repo.write_claims(conn, allocation_id, demands, claims, data.customer_group)
    result = await repo.load(conn, allocation_id)
    assert result is not None
    emit_allocated(tx, result, claims)
    return result


def shortfalls(lines: Sequence[Line], plan: Plan) -> list[dict[str, object]]:
    """The lines the plan does not cover in full, as the 409's ``errors``."""
    return [
        {"sku": line.sku, "requested": line.quantity, "available": planned(takes)}
        for line, takes in zip(lines, plan, strict=True)
        if planned(takes) < line.quantity
    ]


def insufficient_stock(short: list[dict[str, object]]) -> Refusal:
    return Refusal(
        409,
        "insufficient-stock",
        "Not enough stock to allocate every line; nothing was allocated.",
        extra={"errors": short},
    )


async def plan_under_rules(
    conn: AsyncConnection,
    book: PositionBook,
    lines: Sequence[Line],
    buyer: Buyer,
    ship_to: str | None,
    now: datetime,
) -> Plan:
    """The plan of ``lines`` under the buyer's channel strategy and channel rules. Run
    it on a book locked in this transaction: the rules' inputs (what each channel and
    group holds) only change under the same position locks."""
    skus = [line.sku for line in lines]
    strategy = await strategy_of(conn, buyer.channel)
    places = await geography(conn) if strategy.ranking == "nearest" and ship_to else None
    limits = {
        sku: channel_view(eligible_available(book, sku, strategy.eligible), terms, buyer)[0]
        for sku, terms in (await load_terms(conn, book, skus, now)).items()
    }
    return plan_allocation(book, lines, strategy, limits=limits, ship_to=ship_to, geography=places)


def emit_allocated(tx: Tx, result: Allocation, claims: repo.Claims) -> None:
    tx.emit(
        STREAM_AVAILABILITY,
        new_event(
            source=SOURCE,
            type_="inventory.allocated",
            subject=result.allocation_id,
            sequence=result.version,
            payload=InventoryAllocated(
                allocation_id=result.allocation_id,
                order_id=result.order_id,
                channel=result.channel,
                lines=[
                    LocatedLine(sku=sku, location_id=location_id, quantity=quantity)
                    for (_, location_id), (sku, quantity) in sorted(claims.items())
                ],
            ),
        ),
    )


async def release(tx: Tx, allocation_id: str, *, bound_to: str | None = None) -> Allocation:
    """Give back what is allocated and not shipped. Releasing twice changes nothing.
    A caller bound to a customer (``bound_to``) releases that customer's only."""
    conn = tx.conn
    head = await repo.locked_header(conn, "allocation_id", allocation_id)
    if head is None or not visible_to(bound_to, head.customer_id):
        raise not_found(allocation_id)
    claims = await repo.open_claims(conn, allocation_id)
    if head.status == "released" or (head.status == "shipped" and not claims):
        result = await repo.load(conn, allocation_id)
        assert result is not None
        return result

    now = clock.now()
    cause = Cause("release", SOURCE, allocation_id)
    book = await PositionBook.lock(conn, [c.sku for c in claims])
    given: Given = []
    for claim in claims:
        given += await give_back(conn, book, claim, int(claim.open), cause, now)
    version = await repo.set_status(conn, allocation_id, "released", now)
    lines = [LocatedLine(sku=c.sku, location_id=c.location_id, quantity=c.open) for c in claims]
    emit_released(tx, head, version, "released", lines)
    emit_replenished(tx, given, "allocation_released")
    result = await repo.load(conn, allocation_id)
    assert result is not None
    return result


Given = list[tuple[PositionKey, dict[str, int]]]


async def give_back(
    conn: AsyncConnection,
    book: PositionBook,
    claim: Any,
    quantity: int,
    cause: Cause,
    now: datetime,
    *,
    backorder: int = 0,
) -> Given:
    """``quantity`` of an open claim leaves ``allocated`` at its location (the
    positions holding the most first): released, but for ``backorder`` of it, which
    is unclaimed and backordered again. Returns the position changes made."""
    marked = await repo.mark_claim(conn, claim, released=quantity - backorder)
    if not marked or (backorder and not await repo.unclaim(conn, claim, backorder)):
        raise RuntimeError(f"claim of {claim.allocation_id} changed under its lock")
    draws, missing = book.allocated_draws(claim.sku, claim.location_id, quantity)
    if missing:
        log.warning(
            "release of %s: %d %s at %s not found in allocated; positions have drifted",
            claim.allocation_id,
            missing,
            claim.sku,
            claim.location_id,
        )
    given: Given = []
    for key, drawn in draws:
        if not await book.apply(conn, key, {"allocated": -drawn}, cause, now=now):
            raise RuntimeError(f"position {key} changed under its lock")
        given.append((key, {"allocated": -drawn}))
    return given


def emit_released(tx: Tx, head: Any, version: int, reason: str, lines: list[LocatedLine]) -> None:
    tx.emit(
        STREAM_AVAILABILITY,
        new_event(
            source=SOURCE,
            type_="inventory.released",
            subject=head.allocation_id,
            sequence=version,
            payload=InventoryReleased(
                allocation_id=head.allocation_id,
                order_id=head.order_id,
                reason=reason,
                lines=lines,
            ),
        ),
    )
