"""Allocation records: header, requested lines (demands) and claims per location."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from process_apis.availability.db import (
    allocation_demands,
    allocation_groups,
    allocation_lines,
    allocations,
)
from process_apis.availability.refusals import DuplicateAllocation
from process_apis.availability.schemas import Allocation, AllocationLine, LocationClaim
from shared.db import savepoint

CLAIMS = allocation_lines
Claims = dict[tuple[int, str], tuple[str, int]]  # (line_no, location_id) -> (sku, quantity)


async def insert_header(
    conn: AsyncConnection,
    allocation_id: str,
    channel: str,
    policy: str,
    now: datetime,
    customer_id: str | None,
) -> None:
    """The allocation's header (status allocated, version 1); 409 when the order has
    one already. In a savepoint so the caller's transaction survives the refusal."""
    try:
        async with savepoint(conn):
            await conn.execute(
                insert(allocations).values(
                    allocation_id=allocation_id,
                    order_id=allocation_id,
                    channel=channel,
                    policy=policy,
                    status="allocated",
                    version=1,
                    created_at=now,
                    updated_at=now,
                    customer_id=customer_id,
                )
            )
    except IntegrityError as exc:
        raise DuplicateAllocation(f"Order {allocation_id} is already allocated.") from exc


async def write_claims(
    conn: AsyncConnection,
    allocation_id: str,
    demands: list[tuple[str, int]],
    claims: Claims,
    customer_group: str | None,
) -> None:
    """The requested lines, the claims per line and location, the customer group, and
    the status they add up to."""
    await conn.execute(
        insert(allocation_demands),
        [
            {"allocation_id": allocation_id, "line_no": n, "sku": sku, "quantity": quantity}
            for n, (sku, quantity) in enumerate(demands, start=1)
        ],
    )
    if claims:
        await conn.execute(insert(allocation_lines), claim_rows(allocation_id, claims))
    if customer_group is not None:
        await conn.execute(
            insert(allocation_groups).values(
                allocation_id=allocation_id, customer_group=customer_group
            )
        )
    requested = sum(quantity for _, quantity in demands)
    claimed = sum(quantity for _, quantity in claims.values())
    if claimed < requested:
        status = "partially_allocated" if claimed else "backordered"
        await conn.execute(
            update(allocations)
            .where(allocations.c.allocation_id == allocation_id)
            .values(status=status)
        )


def claim_rows(allocation_id: str, claims: Claims) -> list[dict[str, Any]]:
    """The ``allocation_lines`` rows of fresh claims (nothing shipped or released)."""
    return [
        {
            "allocation_id": allocation_id,
            "line_no": line_no,
            "location_id": location_id,
            "order_id": allocation_id,
            "sku": sku,
            "quantity": quantity,
            "shipped": 0,
            "released": 0,
        }
        for (line_no, location_id), (sku, quantity) in sorted(claims.items())
    ]


def open_quantity() -> Any:
    return CLAIMS.c.quantity - CLAIMS.c.shipped - CLAIMS.c.released


async def locked_header(conn: AsyncConnection, column: str, value: str) -> Any:
    """The allocation's row, locked for the transaction (a no-op on SQLite, whose
    transaction already holds the write lock); None when there is none."""
    return (await conn.execute(_locked_header(column), {"value": value})).first()


# The statements of a shipment's path are built once, with bind parameters: one built
# per call costs SQLAlchemy more than running it (its cache key is computed each time).
@cache
def _locked_header(column: str) -> Any:
    return select(allocations).where(allocations.c[column] == bindparam("value")).with_for_update()


async def open_claims(conn: AsyncConnection, allocation_id: str, **where: str) -> list[Any]:
    query = _open_claims(tuple(sorted(where)))
    params = {"allocation_id": allocation_id} | {f"w_{c}": v for c, v in where.items()}
    return list((await conn.execute(query, params)).all())


@cache
def _open_claims(columns: tuple[str, ...]) -> Any:
    query = (
        select(CLAIMS, open_quantity().label("open"))
        .where(CLAIMS.c.allocation_id == bindparam("allocation_id"), open_quantity() > 0)
        .order_by(CLAIMS.c.line_no, CLAIMS.c.location_id)
    )
    for column in columns:
        query = query.where(CLAIMS.c[column] == bindparam(f"w_{column}"))
    return query


async def mark_claim(
    conn: AsyncConnection, claim: Any, *, shipped: int = 0, released: int = 0
) -> bool:
    """Move part of a claim's open quantity to shipped or released (guarded in SQL)."""
    params = {
        "at_allocation": claim.allocation_id,
        "at_line": claim.line_no,
        "at_location": claim.location_id,
        "add_shipped": shipped,
        "add_released": released,
        "moved": shipped + released,
    }
    return (await conn.execute(_MARK_CLAIM, params)).rowcount == 1


# An UPDATE's bind parameters may not be named as its table's columns.
_MARK_CLAIM = (
    update(CLAIMS)
    .where(
        CLAIMS.c.allocation_id == bindparam("at_allocation"),
        CLAIMS.c.line_no == bindparam("at_line"),
        CLAIMS.c.location_id == bindparam("at_location"),
        open_quantity() >= bindparam("moved"),
    )
    .values(
        shipped=CLAIMS.c.shipped + bindparam("add_shipped"),
        released=CLAIMS.c.released + bindparam("add_released"),
    )
)


async def unclaim(conn: AsyncConnection, claim: Any, quantity: int) -> bool:
    """Part of a claim's open quantity is no longer claimed: its line is backordered by
    as much again (guarded in SQL)."""
    result = await conn.execute(
        update(CLAIMS)
        .where(
            CLAIMS.c.allocation_id == claim.allocation_id,
            CLAIMS.c.line_no == claim.line_no,
            CLAIMS.c.location_id == claim.location_id,
            open_quantity() >= quantity,
        )
        .values(quantity=CLAIMS.c.quantity - quantity)
    )
    return result.rowcount == 1


def status_of(requested: int, claimed: int, shipped: int, released: int) -> str:
    """The status an allocation's quantities add up to. ``shipped`` once all that is
    claimed and not released has shipped (a backorder may remain: a fill reopens it);
    ``released`` when nothing is open, backordered or shipped (every line given back)."""
    open_ = claimed - shipped - released
    if shipped:
        return "partially_shipped" if open_ else "shipped"
    if not open_:
        return "backordered" if requested > claimed else "released"
    return "partially_allocated" if requested > claimed else "allocated"


async def settled_status(conn: AsyncConnection, allocation_id: str) -> str:
    """``status_of`` the allocation as its demands and claims stand now."""
    params = {"allocation_id": allocation_id}
    requested, claimed, shipped, released = (await conn.execute(_SETTLED, params)).one()
    return status_of(int(requested or 0), int(claimed), int(shipped), int(released))


_REQUESTED = (
    select(func.coalesce(func.sum(allocation_demands.c.quantity), 0))
    .where(allocation_demands.c.allocation_id == bindparam("allocation_id"))
    .scalar_subquery()
)
# What was asked for, claimed, shipped and released, in one read.
_SETTLED = select(
    _REQUESTED,
    func.coalesce(func.sum(CLAIMS.c.quantity), 0),
    func.coalesce(func.sum(CLAIMS.c.shipped), 0),
    func.coalesce(func.sum(CLAIMS.c.released), 0),
).where(CLAIMS.c.allocation_id == bindparam("allocation_id"))


async def add_claims(conn: AsyncConnection, allocation_id: str, claims: Claims) -> None:
    """More claimed on a line at a location (a fill): added to the claim there, or a
    new claim."""
    existing = {
        (int(row.line_no), row.location_id)
        for row in await conn.execute(
            select(CLAIMS.c.line_no, CLAIMS.c.location_id).where(
                CLAIMS.c.allocation_id == allocation_id
            )
        )
    }
    fresh: Claims = {}
    for (line_no, location_id), (sku, quantity) in sorted(claims.items()):
        if (line_no, location_id) not in existing:
            fresh[(line_no, location_id)] = (sku, quantity)
            continue
        await conn.execute(
            update(CLAIMS)
            .where(
                CLAIMS.c.allocation_id == allocation_id,
                CLAIMS.c.line_no == line_no,
                CLAIMS.c.location_id == location_id,
            )
            .values(quantity=CLAIMS.c.quantity + quantity)
        )
    if fresh:
        await conn.execute(insert(allocation_lines), claim_rows(allocation_id, fresh))


async def lower_demand(conn: AsyncConnection, allocation_id: str, line_no: int, by: int) -> None:
    """A line's backordered units no longer wanted: its requested quantity goes down."""
    await conn.execute(
        update(allocation_demands)
        .where(
            allocation_demands.c.allocation_id == allocation_id,
            allocation_demands.c.line_no == line_no,
        )
        .values(quantity=allocation_demands.c.quantity - by)
    )


async def set_status(conn: AsyncConnection, allocation_id: str, status: str, now: datetime) -> int:
    """New status, version + 1; returns the new version."""
    params = {"at_allocation": allocation_id, "new_status": status, "now": now}
    version = await conn.scalar(_SET_STATUS, params)
    return int(version or 0)


_SET_STATUS = (
    update(allocations)
    .where(allocations.c.allocation_id == bindparam("at_allocation"))
    .values(
        status=bindparam("new_status"),
        version=allocations.c.version + 1,
        updated_at=bindparam("now"),
    )
    .returning(allocations.c.version)
)


# An allocation's rows, by statements built once (a statement built per call cost
# SQLAlchemy more than running it).
_HEAD = select(allocations).where(allocations.c.allocation_id == bindparam("at_allocation"))
_DEMANDS = (
    select(allocation_demands)
    .where(allocation_demands.c.allocation_id == bindparam("at_allocation"))
    .order_by(allocation_demands.c.line_no)
)
_CLAIMS_OF = (
    select(CLAIMS)
    .where(CLAIMS.c.allocation_id == bindparam("at_allocation"))
    .order_by(CLAIMS.c.line_no, CLAIMS.c.location_id)
)
_GROUP_OF = select(allocation_groups.c.customer_group).where(
    allocation_groups.c.allocation_id == bindparam("at_allocation")
)


async def load(conn: AsyncConnection, allocation_id: str) -> Allocation | None:
    at = {"at_allocation": allocation_id}
    head = (await conn.execute(_HEAD, at)).first()
    if head is None:
        return None
    demands = (await conn.execute(_DEMANDS, at)).all()
    claims = (await conn.execute(_CLAIMS_OF, at)).all()
    by_line: dict[int, list[Any]] = {}
    for claim in claims:
        by_line.setdefault(claim.line_no, []).append(claim)
    lines = []
    for demand in demands:
        mine = by_line.get(demand.line_no, [])
        allocated = sum(int(c.quantity) for c in mine)
        lines.append(
            AllocationLine(
                sku=demand.sku,
                quantity=int(demand.quantity),
                allocated=allocated,
                backordered=int(demand.quantity) - allocated,
                shipped=sum(int(c.shipped) for c in mine),
                released=sum(int(c.released) for c in mine),
                locations=[
                    LocationClaim(c.location_id, int(c.quantity), int(c.shipped), int(c.released))
                    for c in mine
                ],
            )
        )
    group = await conn.scalar(_GROUP_OF, at)
    return Allocation(
        customer_group=group,
        allocation_id=head.allocation_id,
        order_id=head.order_id,
        channel=head.channel,
        policy=head.policy,
        status=head.status,
        version=int(head.version),
        lines=lines,
        created_at=head.created_at,
        updated_at=head.updated_at,
        customer_id=head.customer_id,
    )
