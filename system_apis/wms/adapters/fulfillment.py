"""Fulfillment orders and shipments of the reference WMS (the writing side).

The statements of a shipment's path are built once, with bind parameters: one built per
call costs SQLAlchemy more than running it (its cache key is computed each time). Bind
names inside ``.values(...)`` differ from the table's column names (SQLAlchemy reserves
those)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import uuid_utils
from sqlalchemy import Select, bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.bulk import BulkInsert
from shared.db import Database, Tx
from system_apis.wms import db as tables
from system_apis.wms.adapters.common import (
    COUNT,
    available_expression,
    bump_stock_version,
    locked_stock,
    lot_out,
    require_warehouse,
)
from system_apis.wms.adapters.deliveries import load_shipments
from system_apis.wms.port import (
    DuplicateLine,
    FulfillmentOrderNotFound,
    InsufficientStock,
    InvalidState,
    OverShipment,
)
from system_apis.wms.schemas import (
    FulfillmentLine,
    FulfillmentOrder,
    FulfillmentOrderIn,
    Shipment,
    ShipmentIn,
    ShipmentLineIn,
    StockLine,
)

FO = tables.fulfillment_orders
FL = tables.fulfillment_lines
PL = tables.pick_lines
STOCK = tables.stock


async def load_orders(
    conn: AsyncConnection, query: Select[Any], params: dict[str, Any] | None = None
) -> list[FulfillmentOrder]:
    """The orders ``query`` selects (run with ``params``), with their lines."""
    heads = (await conn.execute(query, params)).all()
    ids = [h.fulfillment_order_id for h in heads]
    lines: dict[str, list[FulfillmentLine]] = {i: [] for i in ids}
    rows = await conn.execute(_LINES_OF_ORDERS, {"ids": ids})
    for row in rows:
        lines[row.fulfillment_order_id].append(
            FulfillmentLine(row.sku, row.quantity, row.shipped, row.picked)
        )
    return [
        FulfillmentOrder(
            fulfillment_order_id=h.fulfillment_order_id,
            order_id=h.order_id,
            warehouse_id=h.warehouse_id,
            status=h.status,
            lines=lines[h.fulfillment_order_id],
            created_at=h.created_at,
            updated_at=h.updated_at,
        )
        for h in heads
    ]


_LINES_OF_ORDERS = (
    select(FL)
    .where(FL.c.fulfillment_order_id.in_(bindparam("ids", expanding=True)))
    .order_by(FL.c.line_no)
)
# One order, run with {"fulfillment_order_id": ...}.
BY_ID = select(FO).where(FO.c.fulfillment_order_id == bindparam("fulfillment_order_id"))
_LOCKED_HEAD = BY_ID.with_for_update()
_LINES = select(FL).where(FL.c.fulfillment_order_id == bindparam("fulfillment_order_id"))


async def load_order(conn: AsyncConnection, fulfillment_order_id: str) -> FulfillmentOrder:
    """The order, which exists."""
    return (await load_orders(conn, BY_ID, {"fulfillment_order_id": fulfillment_order_id}))[0]


async def order_lines(conn: AsyncConnection, fulfillment_order_id: str) -> list[Any]:
    """The order's ``fulfillment_lines`` rows."""
    params = {"fulfillment_order_id": fulfillment_order_id}
    return list((await conn.execute(_LINES, params)).all())


async def _locked_head(conn: AsyncConnection, fulfillment_order_id: str) -> Any:
    """The order's row, locked for this transaction (FOR UPDATE is a no-op on SQLite,
    whose transaction already holds the write lock)."""
    params = {"fulfillment_order_id": fulfillment_order_id}
    head = (await conn.execute(_LOCKED_HEAD, params)).first()
    if head is None:
        raise FulfillmentOrderNotFound(f"No fulfillment order {fulfillment_order_id}.")
    return head


async def set_status(
    conn: AsyncConnection, fulfillment_order_id: str, status: str, now: datetime
) -> None:
    """The order's new status, version + 1."""
    params = {"at_order": fulfillment_order_id, "new_status": status, "now_at": now}
    await conn.execute(_SET_STATUS, params)


_SET_STATUS = (
    update(FO)
    .where(FO.c.fulfillment_order_id == bindparam("at_order"))
    .values(
        status=bindparam("new_status"), version=FO.c.version + 1, updated_at=bindparam("now_at")
    )
)


def pick_open(pick: Any) -> int:
    """What of a pick line is still picked: neither shipped nor put away."""
    return int(pick.quantity - pick.shipped - pick.put_away)


async def _open_picks(conn: AsyncConnection, fulfillment_order_id: str) -> list[Any]:
    """The order's pick lines neither shipped nor put away, locked, in (sku, lot, pick)
    order."""
    params = {"fulfillment_order_id": fulfillment_order_id}
    return list((await conn.execute(_OPEN_PICKS, params)).all())


_OPEN_PICKS = (
    select(PL)
    .where(
        PL.c.fulfillment_order_id == bindparam("fulfillment_order_id"),
        PL.c.shipped + PL.c.put_away < PL.c.quantity,
    )
    .order_by(PL.c.sku, PL.c.lot, PL.c.pick_id, PL.c.line_no)
    .with_for_update()
)


async def _draw_stock(
    conn: AsyncConnection,
    fulfillment_order_id: str,
    warehouse_id: str,
    lines: Sequence[ShipmentLineIn],
    now: datetime,
) -> dict[tuple[str, str], int]:
    """Take the shipped quantities out of stock. What the order has picked ships first
    (so the lots picked are the lots shipped), then free stock: a named lot from that
    lot, otherwise the lots in key order ('' first). Returns what was drawn per (sku, lot)."""
    picks = await _open_picks(conn, fulfillment_order_id)
    picked_left: dict[tuple[str, str], int] = {}
    for pick in picks:
        key = (pick.sku, pick.lot)
        picked_left[key] = picked_left.get(key, 0) + pick_open(pick)
    rows = await locked_stock(conn, warehouse_id, (line.sku for line in lines))
    free = {(r.sku, r.lot): int(r.on_hand - sum(getattr(r, c) for c in tables.HELD)) for r in rows}
    from_picks: dict[tuple[str, str], int] = {}
    from_free: dict[tuple[str, str], int] = {}
    # Lines naming a lot first, so a lot-less line never takes stock a named lot needs.
    for line in sorted(lines, key=lambda x: x.lot is None):
        need = line.quantity
        if line.lot:
            keys = [(line.sku, line.lot)]
        else:
            known = {k for k in (*free, *picked_left) if k[0] == line.sku}
            keys = sorted(known, key=lambda k: (not picked_left.get(k), k[1]))
        for source, drawn in ((picked_left, from_picks), (free, from_free)):
            for key in keys:
                take = min(source.get(key, 0), need)
                if take > 0:
                    source[key] -= take
                    drawn[key] = drawn.get(key, 0) + take
                    need -= take
        if need:
            where = f" lot {line.lot}" if line.lot else ""
            raise InsufficientStock(
                f"Warehouse {warehouse_id} has not enough {line.sku}{where} on hand "
                f"for {line.quantity} more."
            )
    for sku, lot in sorted(from_picks.keys() | from_free.keys()):
        of_picks, of_free = from_picks.get((sku, lot), 0), from_free.get((sku, lot), 0)
        params = {"at_warehouse": warehouse_id, "at_sku": sku, "at_lot": lot, "now_at": now}
        params |= {"of_picks": of_picks, "of_free": of_free, "drawn": of_picks + of_free}
        result = await conn.execute(_DRAW_STOCK, params)
        if result.rowcount != 1:
            raise InsufficientStock(f"Warehouse {warehouse_id} has not enough {sku} on hand.")
    await _ship_picks(conn, picks, from_picks)
    return {
        k: from_picks.get(k, 0) + from_free.get(k, 0) for k in from_picks.keys() | from_free.keys()
    }


_DRAW_STOCK = (
    update(STOCK)
    .where(
        STOCK.c.warehouse_id == bindparam("at_warehouse"),
        STOCK.c.sku == bindparam("at_sku"),
        STOCK.c.lot == bindparam("at_lot"),
        STOCK.c.picked >= bindparam("of_picks", type_=COUNT),
        available_expression() >= bindparam("of_free", type_=COUNT),
    )
    .values(
        on_hand=STOCK.c.on_hand - bindparam("drawn", type_=COUNT),
        picked=STOCK.c.picked - bindparam("of_picks", type_=COUNT),
        updated_at=bindparam("now_at"),
    )
)


async def _ship_picks(
    conn: AsyncConnection, picks: list[Any], from_picks: dict[tuple[str, str], int]
) -> None:
    """Mark the pick lines the shipment took, oldest first."""
    left = dict(from_picks)
    taken: list[dict[str, Any]] = []
    for pick in picks:
        key = (pick.sku, pick.lot)
        take = min(left.get(key, 0), pick_open(pick))
        if take <= 0:
            continue
        left[key] -= take
        taken.append({"at_pick": pick.pick_id, "at_line": pick.line_no, "take": take})
    if taken:
        await conn.execute(_SHIP_PICK, taken)


_SHIP_PICK = (
    update(PL)
    .where(PL.c.pick_id == bindparam("at_pick"), PL.c.line_no == bindparam("at_line"))
    .values(shipped=PL.c.shipped + bindparam("take", type_=COUNT))
)

# The writes of creating an order and of dispatching a shipment.
_INSERT_ORDER = insert(FO)
_INSERT_LINES = BulkInsert(
    FL, ["fulfillment_order_id", "line_no", "sku", "quantity", "shipped", "picked"]
)
_SHIP_LINE = (
    update(FL)
    .where(
        FL.c.fulfillment_order_id == bindparam("at_order"),
        FL.c.sku == bindparam("at_sku"),
        FL.c.shipped + bindparam("add_shipped", type_=COUNT) <= FL.c.quantity,
    )
    .values(shipped=FL.c.shipped + bindparam("add_shipped", type_=COUNT))
)
_TOTALS = select(func.sum(FL.c.quantity), func.sum(FL.c.shipped)).where(
    FL.c.fulfillment_order_id == bindparam("fulfillment_order_id")
)
_INSERT_SHIPMENT = insert(tables.shipments)
_INSERT_SHIPMENT_LINES = BulkInsert(
    tables.shipment_lines, ["shipment_id", "line_no", "sku", "lot", "quantity"]
)


async def order_totals(conn: AsyncConnection, fulfillment_order_id: str) -> tuple[Any, Any]:
    """The order's units ordered and shipped (None, None when it has no lines)."""
    params = {"fulfillment_order_id": fulfillment_order_id}
    ordered, shipped = (await conn.execute(_TOTALS, params)).one()
    return ordered, shipped


class ReferenceFulfillment:
    db: Database

    async def create_fulfillment_order(self, tx: Tx, order: FulfillmentOrderIn) -> FulfillmentOrder:
        skus = [line.sku for line in order.lines]
        if len(set(skus)) != len(skus):
            raise DuplicateLine("Each sku may appear on one line of a fulfillment order.")
        await require_warehouse(tx.conn, order.warehouse_id)
        fulfillment_order_id = f"FO-{uuid_utils.uuid7()}"
        now = datetime.now(UTC)
        await tx.conn.execute(
            _INSERT_ORDER,
            {
                "fulfillment_order_id": fulfillment_order_id,
                "order_id": order.order_id,
                "warehouse_id": order.warehouse_id,
                "status": "released",
                "version": 1,
                "created_at": now,
                "updated_at": now,
            },
        )
        await _INSERT_LINES(
            tx.conn,
            [
                {
                    "fulfillment_order_id": fulfillment_order_id,
                    "line_no": n,
                    "sku": line.sku,
                    "quantity": line.quantity,
                    "shipped": 0,
                    "picked": 0,
                }
                for n, line in enumerate(order.lines, start=1)
            ],
        )
        return FulfillmentOrder(
            fulfillment_order_id=fulfillment_order_id,
            order_id=order.order_id,
            warehouse_id=order.warehouse_id,
            status="released",
            lines=[FulfillmentLine(line.sku, line.quantity, 0) for line in order.lines],
            created_at=now,
            updated_at=now,
        )

    async def cancel_fulfillment_order(self, tx: Tx, fulfillment_order_id: str) -> FulfillmentOrder:
        head = await _locked_head(tx.conn, fulfillment_order_id)
        if head.status in ("partially_shipped", "shipped"):
            raise InvalidState(f"Fulfillment order {fulfillment_order_id} has shipped.")
        if head.status != "cancelled" and await _open_picks(tx.conn, fulfillment_order_id):
            raise InvalidState(
                f"Fulfillment order {fulfillment_order_id} has picked stock; put it away first."
            )
        if head.status != "cancelled":
            await set_status(tx.conn, fulfillment_order_id, "cancelled", datetime.now(UTC))
        return await load_order(tx.conn, fulfillment_order_id)

    async def create_shipment(
        self, tx: Tx, fulfillment_order_id: str, shipment: ShipmentIn
    ) -> Shipment:
        conn = tx.conn
        head = await _locked_head(conn, fulfillment_order_id)
        if head.status == "cancelled":
            raise InvalidState(f"Fulfillment order {fulfillment_order_id} is cancelled.")
        keys = [(line.sku, line.lot or "") for line in shipment.lines]
        if len(set(keys)) != len(keys):
            raise DuplicateLine("Each (sku, lot) may appear on one line of a shipment.")
        wanted: dict[str, int] = {}
        for line in shipment.lines:
            wanted[line.sku] = wanted.get(line.sku, 0) + line.quantity
        rows = await order_lines(conn, fulfillment_order_id)
        open_by_sku = {r.sku: int(r.quantity - r.shipped) for r in rows}
        for sku, quantity in sorted(wanted.items()):
            remaining = open_by_sku.get(sku, 0)
            if quantity > remaining:
                raise OverShipment(
                    f"{quantity} of {sku} would ship, but {remaining} remain open on "
                    f"{fulfillment_order_id}."
                )
        now = datetime.now(UTC)
        # The warehouse row before the stock rows: the lock order of every stock writer.
        await bump_stock_version(conn, head.warehouse_id)
        draws = await _draw_stock(
            conn, fulfillment_order_id, head.warehouse_id, shipment.lines, now
        )
        for sku, quantity in sorted(wanted.items()):
            params = {"at_order": fulfillment_order_id, "at_sku": sku, "add_shipped": quantity}
            result = await conn.execute(_SHIP_LINE, params)
            if result.rowcount != 1:
                raise OverShipment(f"More {sku} than remains open on {fulfillment_order_id}.")
        ordered, shipped = await order_totals(conn, fulfillment_order_id)
        status = "shipped" if shipped >= ordered else "partially_shipped"
        await set_status(conn, fulfillment_order_id, status, now)
        shipment_id = f"SHP-{uuid_utils.uuid7()}"
        await conn.execute(
            _INSERT_SHIPMENT,
            {
                "shipment_id": shipment_id,
                "fulfillment_order_id": fulfillment_order_id,
                "order_id": head.order_id,
                "warehouse_id": head.warehouse_id,
                "carrier": shipment.carrier,
                "tracking_number": shipment.tracking_number,
                "shipped_at": now,
            },
        )
        drawn = sorted(draws.items())
        await _INSERT_SHIPMENT_LINES(
            conn,
            [
                {"shipment_id": shipment_id, "line_no": n, "sku": sku, "lot": lot, "quantity": q}
                for n, ((sku, lot), q) in enumerate(drawn, start=1)
            ],
        )
        return Shipment(
            shipment_id=shipment_id,
            fulfillment_order_id=fulfillment_order_id,
            order_id=head.order_id,
            warehouse_id=head.warehouse_id,
            carrier=shipment.carrier,
            tracking_number=shipment.tracking_number,
            lines=[StockLine(sku, q, lot_out(lot)) for (sku, lot), q in drawn],
            shipped_at=now,
        )

    async def list_shipments(self, fulfillment_order_id: str) -> list[Shipment]:
        async with self.db.read() as conn:
            return await load_shipments(conn, "fulfillment_order_id", fulfillment_order_id)
