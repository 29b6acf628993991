"""Allocation records: header, requested lines (demands) and claims per location."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from process_apis.availability.db import allocation_demands, allocation_lines, allocations
from process_apis.availability.schemas import Allocation, AllocationLine, LocationClaim

CLAIMS = allocation_lines


def open_quantity() -> Any:
    return CLAIMS.c.quantity - CLAIMS.c.shipped - CLAIMS.c.released


def utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


async def locked_header(conn: AsyncConnection, column: str, value: str) -> Any:
    """The allocation's row, locked for the transaction (a no-op on SQLite, whose
    transaction already holds the write lock); None when there is none."""
    return (
        await conn.execute(
            select(allocations).where(allocations.c[column] == value).with_for_update()
        )
    ).first()


async def open_claims(conn: AsyncConnection, allocation_id: str, **where: str) -> list[Any]:
    query = (
        select(CLAIMS, open_quantity().label("open"))
        .where(CLAIMS.c.allocation_id == allocation_id, open_quantity() > 0)
        .order_by(CLAIMS.c.line_no, CLAIMS.c.location_id)
    )
    for column, value in where.items():
        query = query.where(CLAIMS.c[column] == value)
    return list((await conn.execute(query)).all())


async def mark_claim(
    conn: AsyncConnection, claim: Any, *, shipped: int = 0, released: int = 0
) -> bool:
    """Move part of a claim's open quantity to shipped or released (guarded in SQL)."""
    result = await conn.execute(
        update(CLAIMS)
        .where(
            CLAIMS.c.allocation_id == claim.allocation_id,
            CLAIMS.c.line_no == claim.line_no,
            CLAIMS.c.location_id == claim.location_id,
            open_quantity() >= shipped + released,
        )
        .values(shipped=CLAIMS.c.shipped + shipped, released=CLAIMS.c.released + released)
    )
    return result.rowcount == 1


async def totals(conn: AsyncConnection, allocation_id: str) -> tuple[int, int]:
    """(claimed, shipped) over all claims of the allocation."""
    claimed, shipped = (
        await conn.execute(
            select(
                func.coalesce(func.sum(CLAIMS.c.quantity), 0),
                func.coalesce(func.sum(CLAIMS.c.shipped), 0),
            ).where(CLAIMS.c.allocation_id == allocation_id)
        )
    ).one()
    return int(claimed), int(shipped)


async def set_status(conn: AsyncConnection, allocation_id: str, status: str, now: datetime) -> int:
    """New status, version + 1; returns the new version."""
    await conn.execute(
        update(allocations)
        .where(allocations.c.allocation_id == allocation_id)
        .values(status=status, version=allocations.c.version + 1, updated_at=now)
    )
    version = await conn.scalar(
        select(allocations.c.version).where(allocations.c.allocation_id == allocation_id)
    )
    return int(version or 0)


async def load(conn: AsyncConnection, allocation_id: str) -> Allocation | None:
    head = (
        await conn.execute(select(allocations).where(allocations.c.allocation_id == allocation_id))
    ).first()
    if head is None:
        return None
    demands = (
        await conn.execute(
            select(allocation_demands)
            .where(allocation_demands.c.allocation_id == allocation_id)
            .order_by(allocation_demands.c.line_no)
        )
    ).all()
    claims = (
        await conn.execute(
            select(CLAIMS)
            .where(CLAIMS.c.allocation_id == allocation_id)
            .order_by(CLAIMS.c.line_no, CLAIMS.c.location_id)
        )
    ).all()
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
    return Allocation(
        allocation_id=head.allocation_id,
        order_id=head.order_id,
        channel=head.channel,
        policy=head.policy,
        status=head.status,
        version=int(head.version),
        lines=lines,
        created_at=utc(head.created_at),
        updated_at=utc(head.updated_at),
    )
