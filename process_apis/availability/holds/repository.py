"""Hold records: header, requested lines and the held positions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from process_apis.availability.db import hold_lines, hold_requests, holds
from process_apis.availability.holds.schemas import HeldPosition, Hold, HoldLine
from process_apis.availability.refusals import DuplicateHold
from shared.db import savepoint

Held = dict[tuple[int, str, str], tuple[str, int]]  # (line_no, location, lot) -> (sku, qty)


async def insert_header(
    conn: AsyncConnection,
    *,
    hold_id: str,
    channel: str,
    customer_id: str | None,
    customer_group: str | None,
    expires_at: datetime,
    now: datetime,
) -> None:
    try:
        async with savepoint(conn):
            await conn.execute(
                insert(holds).values(
                    hold_id=hold_id,
                    channel=channel,
                    customer_id=customer_id,
                    customer_group=customer_group,
                    status="active",
                    expires_at=expires_at,
                    order_id=None,
                    version=1,
                    created_at=now,
                    updated_at=now,
                )
            )
    except IntegrityError as exc:
        raise DuplicateHold(f"Hold {hold_id} exists already.") from exc


async def write_lines(
    conn: AsyncConnection,
    head: Any,
    requested: list[tuple[str, int]],
    held: Held,
) -> None:
    await conn.execute(
        insert(hold_requests),
        [
            {"hold_id": head.hold_id, "line_no": n, "sku": sku, "quantity": quantity}
            for n, (sku, quantity) in enumerate(requested, start=1)
        ],
    )
    await conn.execute(
        insert(hold_lines),
        [
            {
                "hold_id": head.hold_id,
                "line_no": line_no,
                "location_id": location_id,
                "lot": lot,
                "sku": sku,
                "quantity": quantity,
                "active": 1,
                "expires_at": head.expires_at,
                "channel": head.channel,
                "customer_group": head.customer_group,
            }
            for (line_no, location_id, lot), (sku, quantity) in sorted(held.items())
        ],
    )


async def locked_header(conn: AsyncConnection, hold_id: str) -> Any:
    return (
        await conn.execute(select(holds).where(holds.c.hold_id == hold_id).with_for_update())
    ).first()


async def active_lines(conn: AsyncConnection, hold_id: str) -> list[Any]:
    return list(
        (
            await conn.execute(
                select(hold_lines)
                .where(hold_lines.c.hold_id == hold_id, hold_lines.c.active == 1)
                .order_by(
                    hold_lines.c.sku,
                    hold_lines.c.location_id,
                    hold_lines.c.lot,
                    hold_lines.c.line_no,
                )
            )
        ).all()
    )


async def requested_lines(conn: AsyncConnection, hold_id: str) -> list[tuple[str, int]]:
    rows = await conn.execute(
        select(hold_requests.c.sku, hold_requests.c.quantity)
        .where(hold_requests.c.hold_id == hold_id)
        .order_by(hold_requests.c.line_no)
    )
    return [(r.sku, int(r.quantity)) for r in rows]


async def close(
    conn: AsyncConnection, hold_id: str, status: str, now: datetime, order_id: str | None = None
) -> None:
    await conn.execute(update(hold_lines).where(hold_lines.c.hold_id == hold_id).values(active=0))
    await conn.execute(
        update(holds)
        .where(holds.c.hold_id == hold_id)
        .values(status=status, order_id=order_id, version=holds.c.version + 1, updated_at=now)
    )


async def lapsed_ids(conn: AsyncConnection, now: datetime, limit: int) -> list[str]:
    rows = await conn.execute(
        select(holds.c.hold_id)
        .where(holds.c.status == "active", holds.c.expires_at <= now)
        .order_by(holds.c.expires_at)
        .limit(limit)
    )
    return [r.hold_id for r in rows]


_HOLD = select(holds).where(holds.c.hold_id == bindparam("at_hold"))
_HELD = (
    select(hold_lines)
    .where(hold_lines.c.hold_id == bindparam("at_hold"))
    .order_by(hold_lines.c.line_no, hold_lines.c.location_id, hold_lines.c.lot)
)


async def load(conn: AsyncConnection, hold_id: str, now: datetime) -> Hold | None:
    head = (await conn.execute(_HOLD, {"at_hold": hold_id})).first()
    if head is None:
        return None
    held = (await conn.execute(_HELD, {"at_hold": hold_id})).all()
    by_line: dict[int, list[HeldPosition]] = {}
    for row in held:
        by_line.setdefault(row.line_no, []).append(
            HeldPosition(row.location_id, row.lot or None, int(row.quantity))
        )
    expires_at = head.expires_at
    status = head.status
    if status == "active" and expires_at <= now:
        status = "expired"
    return Hold(
        hold_id=head.hold_id,
        channel=head.channel,
        customer_id=head.customer_id,
        customer_group=head.customer_group,
        status=status,
        expires_at=expires_at,
        order_id=head.order_id,
        version=int(head.version),
        lines=[
            HoldLine(sku, quantity, by_line.get(n, []))
            for n, (sku, quantity) in enumerate(await requested_lines(conn, hold_id), start=1)
        ],
        created_at=head.created_at,
        updated_at=head.updated_at,
    )
