"""Picks undone: put-aways and shortages (ORDERED with the warehouse's other stock
events: each carries the warehouse's stock version, so each must apply, even when it
changes no position, or the next stock event would wait on its sequence).

A put-away returns picked units to the shelf: on_hand does not move and the order's
allocation is the order service's to release, but units picked outside any allocation
(``external_committed``, see consumers/wms_stock.py) are free again. A shortage moves
nothing here: the missing stock goes to ``hold`` by the ``inventory.adjusted`` the WMS
emits with it, and the order service releases the order's claims."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select, update

from process_apis.availability.consumers.apply import Changes, add, apply_changes
from process_apis.availability.db import picks_seen
from process_apis.availability.positions.ledger import Cause, PositionKey, emit_replenished
from shared.db import Tx
from shared.events.catalog import PickPutAway
from shared.events.envelope import Event


async def on_put_away(tx: Tx, event: Event) -> None:
    put_away = event.payload(PickPutAway)
    p = picks_seen.c
    changes: Changes = {}
    for line in put_away.lines:
        left = line.quantity
        rows = await tx.conn.execute(
            select(picks_seen)
            .where(
                p.order_id == put_away.order_id,
                p.location_id == put_away.warehouse_id,
                p.sku == line.sku,
                p.quantity > 0,
                *([p.lot == line.lot] if line.lot else []),
            )
            .order_by(p.pick_id.desc(), p.line_no.desc())
        )
        for row in rows:
            if left <= 0:
                break
            take = min(left, int(row.quantity))
            left -= take
            remaining = int(row.quantity) - take
            # External units beyond what stays picked are on the shelf again.
            freed = max(0, int(row.external - row.external_released) - remaining)
            if freed:
                add(
                    changes,
                    PositionKey(line.sku, put_away.warehouse_id, row.lot),
                    external_committed=-freed,
                )
            await tx.conn.execute(
                update(picks_seen)
                .where(p.pick_id == row.pick_id, p.line_no == row.line_no)
                .values(quantity=remaining, external_released=p.external_released + freed)
            )
    if changes:
        cause = Cause("put_away", event.source, put_away.put_away_id, event.id)
        applied = await apply_changes(tx.conn, changes, cause, datetime.now(UTC))
        emit_replenished(tx, applied, "put_away", causation=event)


async def on_shortage(tx: Tx, event: Event) -> None:  # noqa: ARG001
    return None  # see the module's docstring: the event only keeps the sequence
