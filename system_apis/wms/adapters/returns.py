"""Return receipts and their inspection outcome (disposition) in the reference WMS.

A return is received only against a return authorization with room for it (ADR 0032;
``claim_rma`` takes the units from the RMA in the receipt's transaction). A received
return is physical stock in quality control. Its disposition moves it:
restock -> available, damaged -> damaged, scrap and return_to_vendor -> gone;
quality_control keeps it there, counted in the line's ``held``, until a release gives
it one of the final dispositions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import uuid_utils
from sqlalchemy import insert, select, update

from shared.db import Database, Tx
from system_apis.wms import db as tables
from system_apis.wms.adapters.common import bump_stock_version, change_stock, lot_out
from system_apis.wms.adapters.return_authorizations import claim_rma
from system_apis.wms.port import (
    DuplicateLine,
    InsufficientStock,
    OverDisposition,
    OverRelease,
    ReturnNotFound,
)
from system_apis.wms.schemas import (
    DispositionIn,
    ReleaseIn,
    ReturnIn,
    ReturnLine,
    ReturnReceipt,
)

RET = tables.returns
RL = tables.return_lines

# disposition -> (return_lines column, stock column deltas per unit)
DISPOSITIONS: dict[str, tuple[str, dict[str, int]]] = {
    "restock": ("restocked", {"quality_control": -1}),
    "damaged": ("damaged", {"quality_control": -1, "damaged": 1}),
    "scrap": ("scrapped", {"quality_control": -1, "on_hand": -1}),
    "return_to_vendor": ("returned_to_vendor", {"quality_control": -1, "on_hand": -1}),
    # Inspected and kept in quality control: counted in ``held``, stock unchanged.
    "quality_control": ("held", {}),
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
            r.held,
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
        head.rma_id,
    )


class ReferenceReturns:
    db: Database

    async def receive_return(self, tx: Tx, receipt: ReturnIn) -> ReturnReceipt:
        keys = [(line.sku, line.lot or "") for line in receipt.lines]
        if len(set(keys)) != len(keys):
            raise DuplicateLine("Each (sku, lot) may appear on one line of a return.")
        now = datetime.now(UTC)
        # The RMA's row first (it orders receipts against it), then the warehouse's.
        order_id = await claim_rma(
            tx.conn,
            receipt.rma_id,
            receipt.order_id,
            ((line.sku, line.quantity) for line in receipt.lines),
            now,
        )
        await bump_stock_version(tx.conn, receipt.warehouse_id)
        return_id = f"RET-{uuid_utils.uuid7()}"
        await tx.conn.execute(
            insert(RET).values(
                return_id=return_id,
                order_id=order_id,
                rma_id=receipt.rma_id,
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
                    "held": 0,
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
        lines = [(x.sku, x.lot or "", x.quantity, x.disposition) for x in disposition.lines]
        return await _apply(tx, return_id, lines, release=False)

    async def release_return(self, tx: Tx, return_id: str, release: ReleaseIn) -> ReturnReceipt:
        lines = [(x.sku, x.lot or "", x.quantity, x.disposition) for x in release.lines]
        return await _apply(tx, return_id, lines, release=True)


async def _apply(
    tx: Tx, return_id: str, lines: Sequence[tuple[str, str, int, str]], *, release: bool
) -> ReturnReceipt:
    """Dispositions (or, with ``release``, releases of held units) of a return's lines.
    The return's row is locked first; the warehouse's stock version rises once when any
    line changes stock (a call that only holds units changes none)."""
    conn = tx.conn
    head = (
        await conn.execute(select(RET).where(RET.c.return_id == return_id).with_for_update())
    ).first()
    if head is None:
        raise ReturnNotFound(f"No return {return_id}.")
    if any(d != "quality_control" for *_, d in lines):
        await bump_stock_version(conn, head.warehouse_id)
    now = datetime.now(UTC)
    rl = RL.c
    for sku, lot, quantity, outcome in sorted(lines, key=lambda x: (x[0], x[1])):
        where = [rl.return_id == return_id, rl.sku == sku, rl.lot == lot]
        column, per_unit = DISPOSITIONS[outcome]
        if release:
            where.append(rl.held >= quantity)
            values = {rl[column]: rl[column] + quantity, rl.held: rl.held - quantity}
        else:
            taken = rl.restocked + rl.damaged + rl.scrapped + rl.returned_to_vendor + rl.held
            where.append(taken + quantity <= rl.quantity)
            values = {rl[column]: rl[column] + quantity}
        result = await conn.execute(update(RL).where(*where).values(values))
        if result.rowcount != 1:
            if release:
                raise OverRelease(
                    f"Return {return_id} holds fewer than {quantity} of {sku} in quality control."
                )
            raise OverDisposition(
                f"Return {return_id} has not {quantity} of {sku} left to disposition."
            )
        deltas = {c: d * quantity for c, d in per_unit.items()}
        if not await change_stock(conn, head.warehouse_id, sku, lot, deltas, now):
            raise InsufficientStock(
                f"{sku} in quality control at {head.warehouse_id} is less than {quantity}."
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
