"""A dispatched shipment leaves the warehouse: on_hand goes down where it shipped, and
the order's open claims there become shipped (allocated goes down with them)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from process_apis.availability.allocations import repository as repo
from process_apis.availability.positions.book import PositionBook
from process_apis.availability.positions.ledger import Cause, PositionKey
from shared.db import Tx
from shared.events.catalog import ShipmentDispatched
from shared.events.envelope import Event

log = logging.getLogger("tally.availability")


async def apply_shipment(tx: Tx, event: Event) -> None:
    shipment = event.payload(ShipmentDispatched)
    conn = tx.conn
    now = datetime.now(UTC)
    cause = Cause("shipment", event.source, shipment.shipment_id, event.id)
    warehouse = shipment.warehouse_id
    head = await repo.locked_header(conn, "order_id", shipment.order_id)
    claims = await repo.open_claims(conn, head.allocation_id, location_id=warehouse) if head else []
    if head is None:
        log.warning(
            "shipment %s of order %s: no allocation here; lowering on_hand only",
            shipment.shipment_id,
            shipment.order_id,
        )
    open_left = {(c.line_no, c.location_id): int(c.open) for c in claims}
    shipped: dict[tuple[int, str], int] = {}
    book = await PositionBook.lock(conn, [line.sku for line in shipment.lines], warehouse)

    for line in sorted(shipment.lines, key=lambda x: (x.sku, x.lot or "")):
        if line.quantity <= 0:
            continue
        key = PositionKey(line.sku, warehouse, line.lot or "")
        on_hand = book.get(key, "on_hand")
        if on_hand < line.quantity:
            log.warning(
                "shipment %s ships %d %s from %s but %d is on hand; on_hand stops at zero",
                shipment.shipment_id,
                line.quantity,
                line.sku,
                warehouse,
                on_hand,
            )
        claimed = _take_open_claims(claims, open_left, shipped, line.sku, line.quantity)
        draws, missing = book.allocated_draws(line.sku, warehouse, claimed, prefer=key)
        if missing:
            log.warning(
                "shipment %s: %d %s claimed at %s missing from allocated; positions drifted",
                shipment.shipment_id,
                missing,
                line.sku,
                warehouse,
            )
        changes: dict[PositionKey, dict[str, int]] = {
            key: {"on_hand": -min(on_hand, line.quantity)}
        }
        for draw_key, quantity in draws:
            changes.setdefault(draw_key, {})["allocated"] = -quantity
        await _lower(conn, book, changes, cause, now)

    if head is not None and shipped:
        await _mark_shipped(conn, head, claims, shipped, now)


async def _lower(
    conn: AsyncConnection,
    book: PositionBook,
    changes: dict[PositionKey, dict[str, int]],
    cause: Cause,
    now: datetime,
) -> None:
    for change_key, deltas in sorted(changes.items()):
        if change_key not in book.values:
            continue  # never received here: nothing to lower
        if not await book.apply(conn, change_key, deltas, cause, now=now):
            raise RuntimeError(f"position {change_key} changed under its lock")


def _take_open_claims(
    claims: list[Any],
    open_left: dict[tuple[int, str], int],
    shipped: dict[tuple[int, str], int],
    sku: str,
    quantity: int,
) -> int:
    """The order's open claims on this sku at this warehouse become shipped, first
    claims first, up to ``quantity``; how much of it they covered."""
    claimed = 0
    for claim in claims:
        ident = (claim.line_no, claim.location_id)
        if claim.sku != sku or not open_left[ident]:
            continue
        take = min(open_left[ident], quantity - claimed)
        open_left[ident] -= take
        shipped[ident] = shipped.get(ident, 0) + take
        claimed += take
        if claimed == quantity:
            break
    return claimed


async def _mark_shipped(
    conn: AsyncConnection,
    head: Any,
    claims: list[Any],
    shipped: dict[tuple[int, str], int],
    now: datetime,
) -> None:
    """Record what shipped on each claim and move the allocation's status with it."""
    for claim in claims:
        quantity = shipped.get((claim.line_no, claim.location_id), 0)
        if quantity and not await repo.mark_claim(conn, claim, shipped=quantity):
            raise RuntimeError(f"claim of {head.allocation_id} changed under its lock")
    status = head.status
    if status != "released":
        status = await repo.settled_status(conn, head.allocation_id)
    await repo.set_status(conn, head.allocation_id, status, now)
