"""Allocating and releasing stock for an order: all lines in one transaction, each
increment a conditional UPDATE that re-checks ATP in SQL, so concurrent allocations
can never promise more than there is."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from process_apis.availability.allocations import repository as repo
from process_apis.availability.allocations.planner import plan_allocation, planned
from process_apis.availability.db import allocation_demands, allocation_lines, allocations
from process_apis.availability.positions.book import PositionBook
from process_apis.availability.positions.ledger import SOURCE, Cause
from process_apis.availability.schemas import Allocation, AllocationIn
from shared.db import Tx
from shared.events.catalog import (
    STREAM_AVAILABILITY,
    InventoryAllocated,
    InventoryReleased,
    LocatedLine,
)
from shared.events.envelope import new_event
from shared.problems import ProblemError

log = logging.getLogger("tally.availability")


def _stock_changed() -> ProblemError:
    return ProblemError(
        409, "insufficient-stock", "Stock changed while allocating; nothing was allocated."
    )


async def allocate(tx: Tx, data: AllocationIn, idempotency_key: str) -> Allocation:
    conn = tx.conn
    now = datetime.now(UTC)
    allocation_id = data.order_id
    try:
        async with conn.begin_nested():
            await conn.execute(
                insert(allocations).values(
                    allocation_id=allocation_id,
                    order_id=data.order_id,
                    channel=data.channel,
                    policy=data.policy,
                    status="allocated",
                    version=1,
                    created_at=now,
                    updated_at=now,
                )
            )
    except IntegrityError as exc:
        raise ProblemError(
            409, "duplicate-allocation", f"Order {data.order_id} is already allocated."
        ) from exc

    book = await PositionBook.lock(conn, [line.sku for line in data.lines])
    plan = plan_allocation(book, data.lines)
    short = [
        {"sku": line.sku, "requested": line.quantity, "available": planned(takes)}
        for line, takes in zip(data.lines, plan, strict=True)
        if planned(takes) < line.quantity
    ]
    if short and data.policy == "reject":
        raise ProblemError(
            409,
            "insufficient-stock",
            "Not enough stock to allocate every line; nothing was allocated.",
            extra={"errors": short},
        )
    if short and data.policy == "ship_complete":
        plan = [[] for _ in plan]

    cause = Cause("allocation", SOURCE, allocation_id, idempotency_key)
    claims: dict[tuple[int, str], tuple[str, int]] = {}
    for line_no, takes in enumerate(plan, start=1):
        for key, quantity in takes:
            if not await book.apply(
                conn, key, {"allocated": quantity}, cause, now=now, require_atp=quantity
            ):
                raise _stock_changed()
            _, before = claims.get((line_no, key.location_id), (key.sku, 0))
            claims[(line_no, key.location_id)] = (key.sku, before + quantity)

    await conn.execute(
        insert(allocation_demands),
        [
            {
                "allocation_id": allocation_id,
                "line_no": n,
                "sku": line.sku,
                "quantity": line.quantity,
            }
            for n, line in enumerate(data.lines, start=1)
        ],
    )
    if claims:
        await conn.execute(
            insert(allocation_lines),
            [
                {
                    "allocation_id": allocation_id,
                    "line_no": line_no,
                    "location_id": location_id,
                    "order_id": data.order_id,
                    "sku": sku,
                    "quantity": quantity,
                    "shipped": 0,
                    "released": 0,
                }
                for (line_no, location_id), (sku, quantity) in sorted(claims.items())
            ],
        )
    requested = sum(line.quantity for line in data.lines)
    claimed = sum(quantity for _, quantity in claims.values())
    if claimed < requested:
        status = "partially_allocated" if claimed else "backordered"
        await conn.execute(
            allocations.update()
            .where(allocations.c.allocation_id == allocation_id)
            .values(status=status)
        )
    result = await repo.load(conn, allocation_id)
    assert result is not None
    tx.emit(
        STREAM_AVAILABILITY,
        new_event(
            source=SOURCE,
            type_="inventory.allocated",
            subject=allocation_id,
            sequence=result.version,
            payload=InventoryAllocated(
                allocation_id=allocation_id,
                order_id=data.order_id,
                channel=data.channel,
                lines=[
                    LocatedLine(sku=sku, location_id=location_id, quantity=quantity)
                    for (_, location_id), (sku, quantity) in sorted(claims.items())
                ],
            ),
        ),
    )
    return result


async def release(tx: Tx, allocation_id: str) -> Allocation:
    """Give back what is allocated and not shipped. Releasing twice changes nothing."""
    conn = tx.conn
    head = await repo.locked_header(conn, "allocation_id", allocation_id)
    if head is None:
        raise ProblemError(404, "allocation-not-found", f"No allocation {allocation_id}.")
    claims = await repo.open_claims(conn, allocation_id)
    if head.status == "released" or (head.status == "shipped" and not claims):
        result = await repo.load(conn, allocation_id)
        assert result is not None
        return result

    now = datetime.now(UTC)
    cause = Cause("release", SOURCE, allocation_id)
    book = await PositionBook.lock(conn, [c.sku for c in claims])
    released: list[LocatedLine] = []
    for claim in claims:
        if not await repo.mark_claim(conn, claim, released=claim.open):
            raise RuntimeError(f"claim of {allocation_id} changed under its lock")
        draws, missing = book.allocated_draws(claim.sku, claim.location_id, claim.open)
        if missing:
            log.warning(
                "release of %s: %d %s at %s not found in allocated; positions have drifted",
                allocation_id,
                missing,
                claim.sku,
                claim.location_id,
            )
        for key, quantity in draws:
            if not await book.apply(conn, key, {"allocated": -quantity}, cause, now=now):
                raise RuntimeError(f"position {key} changed under its lock")
        released.append(
            LocatedLine(sku=claim.sku, location_id=claim.location_id, quantity=claim.open)
        )
    version = await repo.set_status(conn, allocation_id, "released", now)
    tx.emit(
        STREAM_AVAILABILITY,
        new_event(
            source=SOURCE,
            type_="inventory.released",
            subject=allocation_id,
            sequence=version,
            payload=InventoryReleased(
                allocation_id=allocation_id,
                order_id=head.order_id,
                reason="released",
                lines=released,
            ),
        ),
    )
    result = await repo.load(conn, allocation_id)
    assert result is not None
    return result
