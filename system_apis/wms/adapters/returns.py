"""Return receipts and their inspection outcome (disposition) in the reference WMS.

A received return is physical stock in quality control. Its disposition moves it:
restock -> available, damaged -> damaged, scrap and return_to_vendor -> gone."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import uuid_utils
from sqlalchemy import insert, select, update

from shared.db import Database, Tx
from system_apis.wms import db as tables
from system_apis.wms.adapters.common import bump_stock_version, change_stock, lot_out
from system_apis.wms.port import DuplicateLine, InsufficientStock, OverDisposition, ReturnNotFound
from system_apis.wms.schemas import DispositionIn, ReturnIn, ReturnLine, ReturnReceipt

RET = tables.returns
RL = tables.return_lines

# disposition -> (return_lines column, stock column deltas per unit)
DISPOSITIONS: dict[str, tuple[str, dict[str, int]]] = {
    "restock": ("restocked", {"quality_control": -1}),
    "damaged": ("damaged", {"quality_control": -1, "damaged": 1}),
    "scrap": ("scrapped", {"quality_control": -1, "on_hand": -1}),
    "return_to_vendor": ("returned_to_vendor", {"quality_control": -1, "on_hand": -1}),
}


async def _load(conn: Any, return_id: str) -> ReturnReceipt | None:
    head = (await conn.execute(select(RET).where(RET.c.return_id == return_id))).first()
    if head is None:
        return None
    rows = (
        await conn.execute(select(RL).where(RL.c.return_id == return_id).order_by(RL.c.line_no))
    ).all()
    lines = [
        ReturnLine(
            r.sku,
            r.quantity,
            lot_out(r.lot),
            r.restocked,
            r.damaged,
            r.scrapped,
            r.returned_to_vendor,
        )
        for r in rows
    ]
    return ReturnReceipt(
        head.return_id,
        head.order_id,
        head.warehouse_id,
        head.status,
        lines,
        head.received_at,
        head.updated_at,
    )


class ReferenceReturns:
    db: Database

    async def receive_return(self, tx: Tx, receipt: ReturnIn) -> ReturnReceipt:
        keys = [(line.sku, line.lot or "") for line in receipt.lines]
        if len(set(keys)) != len(keys):
            raise DuplicateLine("Each (sku, lot) may appear on one line of a return.")
        await bump_stock_version(tx.conn, receipt.warehouse_id)
        now = datetime.now(UTC)
        return_id = f"RET-{uuid_utils.uuid7()}"
        await tx.conn.execute(
            insert(RET).values(
                return_id=return_id,
                order_id=receipt.order_id,
                warehouse_id=receipt.warehouse_id,
                status="received",
                received_at=now,
                updated_at=now,
            )
        )
        await tx.conn.execute(
            insert(RL),
            [
                {
                    "return_id": return_id,
                    "line_no": n,
                    "sku": line.sku,
                    "lot": line.lot or "",
                    "quantity": line.quantity,
                    "restocked": 0,
                    "damaged": 0,
                    "scrapped": 0,
                    "returned_to_vendor": 0,
                }
                for n, line in enumerate(receipt.lines, start=1)
            ],
        )
        for line in sorted(receipt.lines, key=lambda x: (x.sku, x.lot or "")):
            deltas = {"on_hand": line.quantity, "quality_control": line.quantity}
            await change_stock(tx.conn, receipt.warehouse_id, line.sku, line.lot or "", deltas, now)
        found = await _load(tx.conn, return_id)
        assert found is not None
        return found

    async def get_return(self, return_id: str) -> ReturnReceipt | None:
        async with self.db.read() as conn:
            return await _load(conn, return_id)

    async def disposition_return(
        self, tx: Tx, return_id: str, disposition: DispositionIn
    ) -> ReturnReceipt:
        conn = tx.conn
        head = (
            await conn.execute(select(RET).where(RET.c.return_id == return_id).with_for_update())
        ).first()
        if head is None:
            raise ReturnNotFound(f"No return {return_id}.")
        await bump_stock_version(conn, head.warehouse_id)
        now = datetime.now(UTC)
        for line in sorted(disposition.lines, key=lambda x: (x.sku, x.lot or "")):
            column, per_unit = DISPOSITIONS[line.disposition]
            lot = line.lot or ""
            rl = RL.c
            taken = rl.restocked + rl.damaged + rl.scrapped + rl.returned_to_vendor
            result = await conn.execute(
                update(RL)
                .where(
                    rl.return_id == return_id,
                    rl.sku == line.sku,
                    rl.lot == lot,
                    taken + line.quantity <= rl.quantity,
                )
                .values({rl[column]: rl[column] + line.quantity})
            )
            if result.rowcount != 1:
                raise OverDisposition(
                    f"Return {return_id} has not {line.quantity} of {line.sku} left to disposition."
                )
            deltas = {c: d * line.quantity for c, d in per_unit.items()}
            if not await change_stock(conn, head.warehouse_id, line.sku, lot, deltas, now):
                raise InsufficientStock(
                    f"{line.sku} in quality control at {head.warehouse_id} is less than "
                    f"{line.quantity}."
                )
        rows = (await conn.execute(select(RL).where(RL.c.return_id == return_id))).all()
        done = all(
            r.restocked + r.damaged + r.scrapped + r.returned_to_vendor == r.quantity for r in rows
        )
        await conn.execute(
            update(RET)
            .where(RET.c.return_id == return_id)
            .values(status="dispositioned" if done else "received", updated_at=now)
        )
        found = await _load(conn, return_id)
        assert found is not None
        return found
