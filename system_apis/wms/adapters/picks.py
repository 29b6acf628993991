"""Pick confirmations of the reference WMS: stock picked for a fulfillment order stays
on hand (it is still in the building) but is held for that order, by lot, until it
ships; the shipment then takes the picked lots first."""

from __future__ import annotations

from datetime import UTC, datetime

import uuid_utils
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.bulk import BulkInsert
from shared.db import Database, Tx
from system_apis.wms import db as tables
from system_apis.wms.adapters.common import COUNT, bump_stock_version, change_stock
from system_apis.wms.adapters.fulfillment import FL, STOCK, _locked_head
from system_apis.wms.port import DuplicateLine, InsufficientStock, InvalidState, OverShipment
from system_apis.wms.schemas import Pick, PickIn, StockLine

_PICK_LINE = (
    update(FL)
    .where(
        FL.c.fulfillment_order_id == bindparam("at_order"),
        FL.c.sku == bindparam("at_sku"),
        FL.c.picked + bindparam("add_picked", type_=COUNT) <= FL.c.quantity,
    )
    .values(picked=FL.c.picked + bindparam("add_picked", type_=COUNT))
)
# A sku's stock rows at a warehouse, locked, in lot order.
_LOCKED_LOTS = (
    select(STOCK)
    .where(STOCK.c.warehouse_id == bindparam("warehouse_id"), STOCK.c.sku == bindparam("sku"))
    .order_by(STOCK.c.lot)
    .with_for_update()
)
_INSERT_PICK = insert(tables.picks)
_INSERT_PICK_LINES = BulkInsert(
    tables.pick_lines,
    ["pick_id", "line_no", "fulfillment_order_id", "sku", "lot", "quantity", "shipped", "put_away"],
)


class ReferencePicks:
    db: Database

    async def confirm_pick(self, tx: Tx, fulfillment_order_id: str, pick: PickIn) -> Pick:
        conn = tx.conn
        head = await _locked_head(conn, fulfillment_order_id)
        if head.status in ("cancelled", "shipped"):
            raise InvalidState(f"Fulfillment order {fulfillment_order_id} is {head.status}.")
        keys = [(line.sku, line.lot or "") for line in pick.lines]
        if len(set(keys)) != len(keys):
            raise DuplicateLine("Each (sku, lot) may appear on one line of a pick.")
        wanted: dict[str, int] = {}
        for line in pick.lines:
            wanted[line.sku] = wanted.get(line.sku, 0) + line.quantity
        # The warehouse row before the stock rows: the lock order of every stock writer.
        await bump_stock_version(conn, head.warehouse_id)
        for sku, quantity in sorted(wanted.items()):
            params = {"at_order": fulfillment_order_id, "at_sku": sku, "add_picked": quantity}
            result = await conn.execute(_PICK_LINE, params)
            if result.rowcount != 1:
                raise OverShipment(
                    f"{quantity} more of {sku} would be picked than {fulfillment_order_id} orders."
                )
        now = datetime.now(UTC)
        picked: list[tuple[str, str, int]] = []
        for line in sorted(pick.lines, key=lambda x: x.lot is None):
            picked += await self._take(
                conn, head.warehouse_id, line.sku, line.lot, line.quantity, now
            )
        pick_id = f"PCK-{uuid_utils.uuid7()}"
        await conn.execute(
            _INSERT_PICK,
            {"pick_id": pick_id, "fulfillment_order_id": fulfillment_order_id, "picked_at": now},
        )
        await _INSERT_PICK_LINES(
            conn,
            [
                {
                    "pick_id": pick_id,
                    "line_no": n,
                    "fulfillment_order_id": fulfillment_order_id,
                    "sku": sku,
                    "lot": lot,
                    "quantity": quantity,
                    "shipped": 0,
                    "put_away": 0,
                }
                for n, (sku, lot, quantity) in enumerate(picked, start=1)
            ],
        )
        return Pick(
            pick_id=pick_id,
            fulfillment_order_id=fulfillment_order_id,
            order_id=head.order_id,
            warehouse_id=head.warehouse_id,
            lines=[StockLine(sku, quantity, lot or None) for sku, lot, quantity in picked],
            picked_at=now,
        )

    async def _take(
        self,
        conn: AsyncConnection,
        warehouse_id: str,
        sku: str,
        lot: str | None,
        quantity: int,
        now: datetime,
    ) -> list[tuple[str, str, int]]:
        """Hold ``quantity`` of free stock as picked: from the named lot, else from the
        lots in key order. Returns (sku, lot, quantity) per lot taken."""
        params = {"warehouse_id": warehouse_id, "sku": sku}
        rows = (await conn.execute(_LOCKED_LOTS, params)).all()
        free = {r.lot: int(r.on_hand - sum(getattr(r, c) for c in tables.HELD)) for r in rows}
        lots = [lot] if lot else sorted(free)
        taken: list[tuple[str, str, int]] = []
        need = quantity
        for each in lots:
            take = min(free.get(each, 0), need)
            if take <= 0:
                continue
            if not await change_stock(conn, warehouse_id, sku, each, {"picked": take}, now):
                raise InsufficientStock(f"{sku} at {warehouse_id} changed while picking.")
            taken.append((sku, each, take))
            need -= take
            if not need:
                break
        if need:
            where = f" lot {lot}" if lot else ""
            raise InsufficientStock(
                f"Warehouse {warehouse_id} has not {quantity} of {sku}{where} free to pick."
            )
        return taken
