"""Put-aways (un-picks) of the reference WMS: picked units of a fulfillment order that
have not shipped go back to free stock. The newest picks are undone first, lot by lot;
the pick lines keep what they picked and count what went back (``put_away``), so
shipments and the cancel check see only what is still picked."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import uuid_utils
from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db import Database, Tx
from system_apis.wms import db as tables
from system_apis.wms.adapters.common import bump_stock_version, change_stock, lot_out
from system_apis.wms.adapters.fulfillment import FL, PL, _locked_head, _open_picks, pick_open
from system_apis.wms.port import DuplicateLine, InsufficientStock, OverPutAway
from system_apis.wms.schemas import PutAway, PutAwayIn, PutAwayLineIn, StockLine

# (pick_id, line_no) -> units of that pick line to put away
Plan = dict[tuple[str, int], int]


def _plan(fulfillment_order_id: str, picks: list[Any], lines: list[PutAwayLineIn]) -> Plan:
    """Which pick lines give the units back: newest first, of the named lot when there
    is one. OverPutAway when the order has not that much picked and unshipped."""
    left = {(p.pick_id, p.line_no): pick_open(p) for p in picks}
    newest_first = sorted(picks, key=lambda p: (p.pick_id, p.line_no), reverse=True)
    plan: Plan = {}
    # Lines naming a lot first, so a lot-less line never takes units a named lot needs.
    for line in sorted(lines, key=lambda x: x.lot is None):
        need = line.quantity
        for pick in newest_first:
            key = (pick.pick_id, pick.line_no)
            if pick.sku != line.sku or (line.lot and pick.lot != line.lot) or not left[key]:
                continue
            take = min(left[key], need)
            left[key] -= take
            plan[key] = plan.get(key, 0) + take
            need -= take
            if not need:
                break
        if need:
            where = f" lot {line.lot}" if line.lot else ""
            raise OverPutAway(
                f"{line.quantity} of {line.sku}{where} would be put away, but "
                f"{line.quantity - need} are picked and not shipped on {fulfillment_order_id}."
            )
    return plan


async def _apply(
    conn: AsyncConnection, head: Any, picks: list[Any], plan: Plan, now: datetime
) -> list[tuple[str, str, int]]:
    """Write the plan: pick lines, stock (picked down) and the order's lines (picked
    down). Returns (sku, lot, quantity) put away, in (sku, lot) order."""
    by_key = {(p.pick_id, p.line_no): p for p in picks}
    per_lot: dict[tuple[str, str], int] = {}
    for key, quantity in sorted(plan.items()):
        pick = by_key[key]
        await conn.execute(
            update(PL)
            .where(PL.c.pick_id == pick.pick_id, PL.c.line_no == pick.line_no)
            .values(put_away=PL.c.put_away + quantity)
        )
        per_lot[(pick.sku, pick.lot)] = per_lot.get((pick.sku, pick.lot), 0) + quantity
    per_sku: dict[str, int] = {}
    for (sku, lot), quantity in sorted(per_lot.items()):
        if not await change_stock(conn, head.warehouse_id, sku, lot, {"picked": -quantity}, now):
            raise InsufficientStock(f"{sku} at {head.warehouse_id} changed while putting away.")
        per_sku[sku] = per_sku.get(sku, 0) + quantity
    for sku, quantity in sorted(per_sku.items()):
        await conn.execute(
            update(FL)
            .where(FL.c.fulfillment_order_id == head.fulfillment_order_id, FL.c.sku == sku)
            .values(picked=FL.c.picked - quantity)
        )
    return [(sku, lot, quantity) for (sku, lot), quantity in sorted(per_lot.items())]


class ReferencePutAways:
    db: Database

    async def put_away(self, tx: Tx, fulfillment_order_id: str, put_away: PutAwayIn) -> PutAway:
        conn = tx.conn
        head = await _locked_head(conn, fulfillment_order_id)
        keys = [(line.sku, line.lot or "") for line in put_away.lines]
        if len(set(keys)) != len(keys):
            raise DuplicateLine("Each (sku, lot) may appear on one line of a put-away.")
        # The warehouse row before the stock rows: the lock order of every stock writer.
        await bump_stock_version(conn, head.warehouse_id)
        picks = await _open_picks(conn, fulfillment_order_id)
        plan = _plan(fulfillment_order_id, picks, put_away.lines)
        now = datetime.now(UTC)
        returned = await _apply(conn, head, picks, plan, now)
        put_away_id = f"PUT-{uuid_utils.uuid7()}"
        await conn.execute(
            insert(tables.put_aways).values(
                put_away_id=put_away_id,
                fulfillment_order_id=fulfillment_order_id,
                put_away_at=now,
            )
        )
        await conn.execute(
            insert(tables.put_away_lines),
            [
                {"put_away_id": put_away_id, "line_no": n, "sku": sku, "lot": lot, "quantity": q}
                for n, (sku, lot, q) in enumerate(returned, start=1)
            ],
        )
        return PutAway(
            put_away_id=put_away_id,
            fulfillment_order_id=fulfillment_order_id,
            order_id=head.order_id,
            warehouse_id=head.warehouse_id,
            lines=[StockLine(sku, q, lot_out(lot)) for sku, lot, q in returned],
            put_away_at=now,
        )
