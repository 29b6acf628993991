"""Adjustments, quality status changes and cycle counts of the reference WMS.

Every change raises the warehouse's stock version first (the warehouse row is the lock
that orders its stock changes), then changes stock rows in (sku, lot) order with
conditional UPDATEs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import uuid_utils
from sqlalchemy import insert, select

from shared.bulk import BulkInsert
from shared.db import Database, Tx
from system_apis.wms import db as tables
from system_apis.wms.adapters.common import bump_stock_version, change_stock, require_warehouse
from system_apis.wms.port import InsufficientStock, StaleExpectation
from system_apis.wms.schemas import (
    Adjustment,
    AdjustmentIn,
    AdjustmentLine,
    CycleCount,
    CycleCountIn,
)

STOCK = tables.stock


def stock_deltas(lines: Sequence[AdjustmentLine]) -> dict[tuple[str, str], dict[str, int]]:
    """Column deltas per (sku, lot): physical stock in ``status`` changes by the delta,
    so on_hand always moves, and a held status moves its own column too."""
    deltas: dict[tuple[str, str], dict[str, int]] = {}
    for line in lines:
        into = deltas.setdefault((line.sku, line.lot or ""), {})
        into["on_hand"] = into.get("on_hand", 0) + line.quantity_delta
        if line.status != "available":
            into[line.status] = into.get(line.status, 0) + line.quantity_delta
    return deltas


async def record_adjustment(
    tx: Tx,
    warehouse_id: str,
    reason: str,
    lines: list[AdjustmentLine],
    now: datetime,
    note: str | None = None,
) -> Adjustment:
    """Apply the lines to stock and keep the adjustment (the caller bumped the stock
    version). InsufficientStock when a line takes more than there is."""
    for (sku, lot), deltas in sorted(stock_deltas(lines).items()):
        if not await change_stock(tx.conn, warehouse_id, sku, lot, deltas, now):
            where = f" lot {lot}" if lot else ""
            raise InsufficientStock(
                f"Warehouse {warehouse_id} cannot take {sku}{where} below what it holds "
                f"(or below what is picked, in quality control, damaged or on hold)."
            )
    adjustment_id = f"ADJ-{uuid_utils.uuid7()}"
    await tx.conn.execute(
        _INSERT_ADJUSTMENT,
        {
            "adjustment_id": adjustment_id,
            "warehouse_id": warehouse_id,
            "reason": reason,
            "note": note,
            "created_at": now,
        },
    )
    await _INSERT_ADJUSTMENT_LINES(
        tx.conn,
        [
            {
                "adjustment_id": adjustment_id,
                "line_no": n,
                "sku": line.sku,
                "lot": line.lot or "",
                "status": line.status,
                "quantity_delta": line.quantity_delta,
            }
            for n, line in enumerate(lines, start=1)
        ],
    )
    return Adjustment(adjustment_id, warehouse_id, reason, lines, now, note)


_INSERT_ADJUSTMENT = insert(tables.adjustments)
_INSERT_ADJUSTMENT_LINES = BulkInsert(
    tables.adjustment_lines,
    ["adjustment_id", "line_no", "sku", "lot", "status", "quantity_delta"],
)


class ReferenceStockChanges:
    db: Database

    async def post_adjustment(self, tx: Tx, adjustment: AdjustmentIn) -> Adjustment:
        if any(line.quantity_delta == 0 for line in adjustment.lines):
            raise InsufficientStock("A line of an adjustment must change the quantity (non-zero).")
        await bump_stock_version(tx.conn, adjustment.warehouse_id)
        lines = [
            AdjustmentLine(line.sku, line.quantity_delta, line.status, line.lot)
            for line in adjustment.lines
        ]
        return await record_adjustment(
            tx,
            adjustment.warehouse_id,
            adjustment.reason,
            lines,
            datetime.now(UTC),
            adjustment.note,
        )

    async def post_cycle_count(
        self, tx: Tx, count: CycleCountIn
    ) -> tuple[CycleCount, Adjustment | None]:
        # The warehouse row first, as every stock writer takes it (no version yet: a
        # count that matches changes nothing and must leave no gap in the sequence).
        await require_warehouse(tx.conn, count.warehouse_id, lock=True)
        lot = count.lot or ""
        row = (
            await tx.conn.execute(
                select(STOCK)
                .where(
                    STOCK.c.warehouse_id == count.warehouse_id,
                    STOCK.c.sku == count.sku,
                    STOCK.c.lot == lot,
                )
                .with_for_update()
            )
        ).first()
        current = int(row.on_hand) if row else 0
        if current != count.expected_quantity:
            raise StaleExpectation(
                f"{count.sku} at {count.warehouse_id} is {current} on hand, "
                f"not the {count.expected_quantity} the count expected to replace.",
                current,
            )
        now = datetime.now(UTC)
        delta = count.counted_quantity - count.expected_quantity
        adjustment = None
        if delta:
            await bump_stock_version(tx.conn, count.warehouse_id)
            line = AdjustmentLine(count.sku, delta, "available", count.lot)
            adjustment = await record_adjustment(tx, count.warehouse_id, "cycle_count", [line], now)
        cycle_count_id = f"CC-{uuid_utils.uuid7()}"
        await tx.conn.execute(
            insert(tables.cycle_counts).values(
                cycle_count_id=cycle_count_id,
                warehouse_id=count.warehouse_id,
                sku=count.sku,
                lot=lot,
                expected_quantity=count.expected_quantity,
                counted_quantity=count.counted_quantity,
                adjustment_id=adjustment.adjustment_id if adjustment else None,
                counted_at=now,
            )
        )
        result = CycleCount(
            cycle_count_id=cycle_count_id,
            warehouse_id=count.warehouse_id,
            sku=count.sku,
            lot=count.lot,
            expected_quantity=count.expected_quantity,
            counted_quantity=count.counted_quantity,
            quantity_delta=delta,
            adjustment_id=adjustment.adjustment_id if adjustment else None,
            counted_at=now,
        )
        return result, adjustment
