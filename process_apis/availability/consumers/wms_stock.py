"""The WMS's stock facts beyond receipts and shipments: picks, adjustments (quality
status changes and cycle counts included) and returns. All are ORDERED with receipts
and shipments (subject ``warehouse:{id}``, sequence = the warehouse's stock version).

Picks (ADR 0010): a picked unit the order's allocation covers stays ``allocated``
until it ships, so it never shows as available, whatever the ERP has posted. A picked
unit no allocation covers (picked for an order placed outside the platform) moves
into ``external_committed`` until its shipment."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from process_apis.availability.consumers.apply import Changes, add, apply_changes
from process_apis.availability.db import allocation_lines, picks_seen
from process_apis.availability.positions.ledger import Cause, PositionKey, emit_replenished
from shared.db import Tx
from shared.events.catalog import (
    InventoryAdjusted,
    PickConfirmed,
    ReturnDispositioned,
    ReturnReceived,
    ShipmentDispatched,
)
from shared.events.envelope import Event

DISPOSITION_DELTAS: dict[str, dict[str, int]] = {
    "restock": {"quality_control": -1},
    "damaged": {"quality_control": -1, "damaged": 1},
    "scrap": {"quality_control": -1, "on_hand": -1},
    "return_to_vendor": {"quality_control": -1, "on_hand": -1},
}
DISPOSITION_REASONS = {
    "restock": "return_restock",
    "damaged": "return_damaged",
    "scrap": "return_scrap",
    "return_to_vendor": "return_to_vendor",
}


async def _open_claims(conn: AsyncConnection, order_id: str, location_id: str, sku: str) -> int:
    lines = allocation_lines.c
    found = await conn.scalar(
        select(func.coalesce(func.sum(lines.quantity - lines.shipped - lines.released), 0)).where(
            lines.order_id == order_id, lines.location_id == location_id, lines.sku == sku
        )
    )
    return int(found or 0)


async def _covered_picks(conn: AsyncConnection, order_id: str, location_id: str, sku: str) -> int:
    """Picked units of the order here that its allocation covers and that have not
    shipped yet (a shipment consumes the allocation's claims, picked ones first)."""
    p = picks_seen.c
    picked = await conn.scalar(
        select(func.coalesce(func.sum(p.quantity - p.external), 0)).where(
            p.order_id == order_id, p.location_id == location_id, p.sku == sku
        )
    )
    lines = allocation_lines.c
    shipped = await conn.scalar(
        select(func.coalesce(func.sum(lines.shipped), 0)).where(
            lines.order_id == order_id, lines.location_id == location_id, lines.sku == sku
        )
    )
    return max(0, int(picked or 0) - int(shipped or 0))


async def on_pick(tx: Tx, event: Event) -> None:
    pick = event.payload(PickConfirmed)
    conn = tx.conn
    now = datetime.now(UTC)
    changes: Changes = {}
    for n, line in enumerate(sorted(pick.lines, key=lambda x: (x.sku, x.lot or "")), start=1):
        if line.quantity <= 0:
            continue
        claims = await _open_claims(conn, pick.order_id, pick.warehouse_id, line.sku)
        covered = await _covered_picks(conn, pick.order_id, pick.warehouse_id, line.sku)
        external = max(0, line.quantity - max(0, claims - covered))
        key = PositionKey(line.sku, pick.warehouse_id, line.lot or "")
        if external:
            add(changes, key, external_committed=external)
        row = {
            "pick_id": pick.pick_id,
            "line_no": n,
            "order_id": pick.order_id,
            "location_id": pick.warehouse_id,
            "sku": line.sku,
            "lot": line.lot or "",
            "quantity": line.quantity,
            "external": external,
            "external_released": 0,
        }
        await conn.execute(insert(picks_seen).values(**row))
    await apply_changes(conn, changes, Cause("pick", event.source, pick.pick_id, event.id), now)


# A shipment's order's picks made outside any allocation, still to be released (built
# once, decision 0043), by sku then pick.
_EXTERNAL_PICKS = (
    select(picks_seen)
    .where(
        picks_seen.c.order_id == bindparam("of_order"),
        picks_seen.c.location_id == bindparam("at_location"),
        picks_seen.c.external > picks_seen.c.external_released,
    )
    .order_by(picks_seen.c.sku, picks_seen.c.pick_id, picks_seen.c.line_no)
)


async def release_external_picks(tx: Tx, event: Event) -> None:
    """Before a shipment applies: the shipped units beyond the order's open claims
    were picked outside any allocation; their external_committed goes."""
    shipment = event.payload(ShipmentDispatched)
    conn = tx.conn
    changes: Changes = {}
    shipped: dict[str, int] = {}
    for line in shipment.lines:
        shipped[line.sku] = shipped.get(line.sku, 0) + max(0, line.quantity)
    # Most shipments follow no external pick: one read finds that out for all skus.
    external: dict[str, list[Any]] = {}
    for pick in await conn.execute(
        _EXTERNAL_PICKS, {"of_order": shipment.order_id, "at_location": shipment.warehouse_id}
    ):
        external.setdefault(pick.sku, []).append(pick)
    for sku, quantity in sorted(shipped.items()):
        picks = external.get(sku)
        if not picks:
            continue
        claims = await _open_claims(conn, shipment.order_id, shipment.warehouse_id, sku)
        beyond = max(0, quantity - claims)
        for pick in picks:
            take = min(beyond, int(pick.external - pick.external_released))
            if take <= 0:
                break
            beyond -= take
            add(
                changes, PositionKey(sku, shipment.warehouse_id, pick.lot), external_committed=-take
            )
            p = picks_seen.c
            await conn.execute(
                update(picks_seen)
                .where(p.pick_id == pick.pick_id, p.line_no == pick.line_no)
                .values(external_released=p.external_released + take)
            )
    cause = Cause("pick_shipped", event.source, shipment.shipment_id, event.id)
    await apply_changes(conn, changes, cause, datetime.now(UTC))


async def on_adjusted(tx: Tx, event: Event) -> None:
    """Physical stock in a status changed: on_hand always, the status bucket too."""
    adjusted = event.payload(InventoryAdjusted)
    changes: Changes = {}
    for line in adjusted.lines:
        key = PositionKey(line.sku, adjusted.warehouse_id, line.lot or "")
        add(changes, key, on_hand=line.quantity_delta)
        if line.status != "available":
            add(changes, key, **{line.status: line.quantity_delta})
    reason = adjusted.reason[:32] or "adjustment"
    cause = Cause(reason, event.source, adjusted.adjustment_id, event.id)
    applied = await apply_changes(tx.conn, changes, cause, datetime.now(UTC))
    emit_replenished(tx, applied, reason, causation=event)


async def on_return_received(tx: Tx, event: Event) -> None:
    """Returned goods are on hand, in quality control until inspected."""
    received = event.payload(ReturnReceived)
    changes: Changes = {}
    for line in received.lines:
        if line.quantity > 0:
            key = PositionKey(line.sku, received.warehouse_id, line.lot or "")
            add(changes, key, on_hand=line.quantity, quality_control=line.quantity)
    cause = Cause("return_received", event.source, received.return_id, event.id)
    await apply_changes(tx.conn, changes, cause, datetime.now(UTC))


async def on_return_dispositioned(tx: Tx, event: Event) -> None:
    done = event.payload(ReturnDispositioned)
    now = datetime.now(UTC)
    by_reason: dict[str, Changes] = {}
    applied: list[tuple[PositionKey, dict[str, int]]] = []
    for line in done.lines:
        if line.quantity <= 0:
            continue
        key = PositionKey(line.sku, done.warehouse_id, line.lot or "")
        per_unit = DISPOSITION_DELTAS[line.disposition]
        changes = by_reason.setdefault(DISPOSITION_REASONS[line.disposition], {})
        add(changes, key, **{b: d * line.quantity for b, d in per_unit.items()})
    for reason, changes in sorted(by_reason.items()):
        cause = Cause(reason, event.source, done.return_id, event.id)
        applied += await apply_changes(tx.conn, changes, cause, now)
    emit_replenished(tx, applied, "return_restock", causation=event)
