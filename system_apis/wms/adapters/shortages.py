"""Lines of a fulfillment order that shrink: cancelled by the order, or shorted by the
warehouse that could not find the units. Either takes only what is open and unpicked
(quantity - shipped - still picked): picked units are put away first, shipped ones
never come back. A shortage also moves up to the shorted quantity of the sku's free
stock to ``hold`` (the shelf count is wrong: the stock stays held until counted)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import uuid_utils
from sqlalchemy import bindparam, insert, update
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.bulk import BulkInsert
from shared.db import Database, Tx
from system_apis.wms import db as tables
from system_apis.wms.adapters.common import COUNT, bump_stock_version, locked_stock
from system_apis.wms.adapters.fulfillment import (
    FL,
    _locked_head,
    _open_picks,
    load_order,
    order_lines,
    order_totals,
    pick_open,
    set_status,
)
from system_apis.wms.adapters.stock_changes import record_adjustment
from system_apis.wms.port import DuplicateLine, InvalidState, NotOpen, UnknownLine
from system_apis.wms.schemas import (
    Adjustment,
    AdjustmentLine,
    FulfillmentOrder,
    LineCancellationIn,
    LineQuantity,
    LineQuantityIn,
    Shortage,
    ShortageIn,
    StockLine,
)

SHORT_PICK = "short_pick"


async def _shrink_lines(
    conn: AsyncConnection, head: Any, lines: Sequence[LineQuantityIn], verb: str
) -> None:
    """Lower the order's lines by ``lines`` and settle its status. The caller locked the
    order's row (``head``): picks and shipments of the order wait for it."""
    fulfillment_order_id = head.fulfillment_order_id
    if head.status in ("cancelled", "shipped"):
        raise InvalidState(f"Fulfillment order {fulfillment_order_id} is {head.status}.")
    skus = [line.sku for line in lines]
    if len(set(skus)) != len(skus):
        raise DuplicateLine(f"Each sku may appear once among the lines {verb}.")
    rows = await order_lines(conn, fulfillment_order_id)
    open_by_sku = {r.sku: int(r.quantity - r.shipped) for r in rows}
    for pick in await _open_picks(conn, fulfillment_order_id):
        open_by_sku[pick.sku] -= pick_open(pick)
    for line in sorted(lines, key=lambda x: x.sku):
        if line.sku not in open_by_sku:
            raise UnknownLine(
                f"Fulfillment order {fulfillment_order_id} has no line of {line.sku}."
            )
        available = max(0, open_by_sku[line.sku])
        if line.quantity > available:
            raise NotOpen(
                f"{line.quantity} of {line.sku} would be {verb}, but {available} are open and "
                f"unpicked on {fulfillment_order_id} (put picked units away first).",
                line.sku,
                available,
            )
        params = {"at_order": fulfillment_order_id, "at_sku": line.sku, "less": line.quantity}
        await conn.execute(_SHRINK_LINE, params)
    await _settle_status(conn, fulfillment_order_id, head.status)


_SHRINK_LINE = (
    update(FL)
    .where(FL.c.fulfillment_order_id == bindparam("at_order"), FL.c.sku == bindparam("at_sku"))
    .values(quantity=FL.c.quantity - bindparam("less", type_=COUNT))
)


async def _settle_status(conn: AsyncConnection, fulfillment_order_id: str, status: str) -> None:
    """Nothing left and nothing shipped: cancelled; all that is left shipped: shipped."""
    ordered, shipped = await order_totals(conn, fulfillment_order_id)
    if not ordered and not shipped:
        status = "cancelled"
    elif shipped >= ordered:
        status = "shipped"
    await set_status(conn, fulfillment_order_id, status, datetime.now(UTC))


async def _hold_plan(
    conn: AsyncConnection, warehouse_id: str, lines: Sequence[LineQuantityIn]
) -> list[AdjustmentLine]:
    """Up to each shorted quantity of the sku's free stock, lots in key order ('' first):
    two adjustment lines per lot, available down and hold up."""
    rows = await locked_stock(conn, warehouse_id, (line.sku for line in lines))
    wanted = {line.sku: line.quantity for line in lines}
    plan: list[AdjustmentLine] = []
    for row in rows:
        free = int(row.on_hand - sum(getattr(row, c) for c in tables.HELD))
        take = min(free, wanted[row.sku])
        if take > 0:
            wanted[row.sku] -= take
            lot = row.lot or None
            plan += [
                AdjustmentLine(row.sku, -take, "available", lot),
                AdjustmentLine(row.sku, take, "hold", lot),
            ]
    return plan


_INSERT_SHORTAGE = insert(tables.shortages)
_INSERT_SHORTAGE_LINES = BulkInsert(
    tables.shortage_lines, ["shortage_id", "line_no", "sku", "quantity"]
)


class ReferenceShortages:
    db: Database

    async def cancel_lines(
        self, tx: Tx, fulfillment_order_id: str, cancellation: LineCancellationIn
    ) -> FulfillmentOrder:
        head = await _locked_head(tx.conn, fulfillment_order_id)
        await _shrink_lines(tx.conn, head, cancellation.lines, "cancelled")
        return await load_order(tx.conn, fulfillment_order_id)

    async def report_shortage(
        self, tx: Tx, fulfillment_order_id: str, shortage: ShortageIn
    ) -> tuple[Shortage, Adjustment | None]:
        conn = tx.conn
        head = await _locked_head(conn, fulfillment_order_id)
        # The warehouse row before the stock rows: the lock order of every stock writer.
        await bump_stock_version(conn, head.warehouse_id)
        await _shrink_lines(conn, head, shortage.lines, "shorted")
        now = datetime.now(UTC)
        held = await _hold_plan(conn, head.warehouse_id, shortage.lines)
        adjustment = None
        if held:
            adjustment = await record_adjustment(tx, head.warehouse_id, SHORT_PICK, held, now)
            # The shortage is a stock change of its own, numbered after the adjustment.
            await bump_stock_version(conn, head.warehouse_id)
        shortage_id = f"SHT-{uuid_utils.uuid7()}"
        await conn.execute(
            _INSERT_SHORTAGE,
            {
                "shortage_id": shortage_id,
                "fulfillment_order_id": fulfillment_order_id,
                "adjustment_id": adjustment.adjustment_id if adjustment else None,
                "reported_at": now,
            },
        )
        await _INSERT_SHORTAGE_LINES(
            conn,
            [
                {
                    "shortage_id": shortage_id,
                    "line_no": n,
                    "sku": line.sku,
                    "quantity": line.quantity,
                }
                for n, line in enumerate(shortage.lines, start=1)
            ],
        )
        result = Shortage(
            shortage_id=shortage_id,
            fulfillment_order_id=fulfillment_order_id,
            order_id=head.order_id,
            warehouse_id=head.warehouse_id,
            lines=[LineQuantity(line.sku, line.quantity) for line in shortage.lines],
            reported_at=now,
            held=[StockLine(a.sku, a.quantity_delta, a.lot) for a in held if a.status == "hold"],
            adjustment_id=adjustment.adjustment_id if adjustment else None,
        )
        return result, adjustment
