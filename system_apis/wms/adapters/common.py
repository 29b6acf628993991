"""Helpers of the reference WMS shared by its modules.

The statements of the stock writers are built once, with bind parameters: one built per
call costs SQLAlchemy more than running it (its cache key is computed each time). Bind
names inside ``.values(...)`` differ from the table's column names (SQLAlchemy reserves
those)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, Update, bindparam, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from system_apis.wms import db as tables
from system_apis.wms.port import UnknownWarehouse

STOCK = tables.stock
WAREHOUSES = tables.warehouses
COUNT = STOCK.c.on_hand.type  # the stock columns' integer type, for binds in arithmetic


def lot_out(lot: str) -> str | None:
    return lot or None


async def require_warehouse(
    conn: AsyncConnection, warehouse_id: str, *, lock: bool = False
) -> None:
    query = _WAREHOUSE_LOCKED if lock else _WAREHOUSE
    found = await conn.scalar(query, {"warehouse_id": warehouse_id})
    if found is None:
        raise UnknownWarehouse(f"No warehouse {warehouse_id}.")


_WAREHOUSE = select(WAREHOUSES.c.warehouse_id).where(
    WAREHOUSES.c.warehouse_id == bindparam("warehouse_id")
)
_WAREHOUSE_LOCKED = _WAREHOUSE.with_for_update()


async def bump_stock_version(conn: AsyncConnection, warehouse_id: str) -> int:
    """Raise the warehouse's stock version by one and return it (UnknownWarehouse when
    there is no such warehouse). Every stock writer calls it first: the warehouse row is
    the lock that orders the warehouse's stock changes, so versions follow commit order."""
    version = await conn.scalar(_BUMP_STOCK_VERSION, {"at_warehouse": warehouse_id})
    if version is None:
        raise UnknownWarehouse(f"No warehouse {warehouse_id}.")
    return int(version)


_BUMP_STOCK_VERSION = (
    update(WAREHOUSES)
    .where(WAREHOUSES.c.warehouse_id == bindparam("at_warehouse"))
    .values(stock_version=WAREHOUSES.c.stock_version + 1)
    .returning(WAREHOUSES.c.stock_version)
)


async def stock_version(conn: AsyncConnection, warehouse_id: str) -> int:
    version = await conn.scalar(_STOCK_VERSION, {"warehouse_id": warehouse_id})
    if version is None:
        raise UnknownWarehouse(f"No warehouse {warehouse_id}.")
    return int(version)


_STOCK_VERSION = select(WAREHOUSES.c.stock_version).where(
    WAREHOUSES.c.warehouse_id == bindparam("warehouse_id")
)


async def add_stock(
    conn: AsyncConnection, warehouse_id: str, sku: str, lot: str, quantity: int, now: datetime
) -> None:
    """on_hand += quantity, creating the (warehouse, sku, lot) row when it is new."""
    params = {
        "at_warehouse": warehouse_id,
        "at_sku": sku,
        "at_lot": lot,
        "add_on_hand": quantity,
        "now_at": now,
    }
    await conn.execute(_add_stock(conn.dialect.name), params)


@cache
def _add_stock(dialect: str) -> Any:
    dialect_insert: Any = sqlite_insert if dialect == "sqlite" else pg_insert
    stmt = dialect_insert(STOCK).values(
        warehouse_id=bindparam("at_warehouse"),
        sku=bindparam("at_sku"),
        lot=bindparam("at_lot"),
        on_hand=bindparam("add_on_hand"),
        updated_at=bindparam("now_at"),
    )
    return stmt.on_conflict_do_update(
        index_elements=["warehouse_id", "sku", "lot"],
        set_={
            "on_hand": STOCK.c.on_hand + stmt.excluded.on_hand,
            "updated_at": stmt.excluded.updated_at,
        },
    )


def available_expression() -> ColumnElement[Any]:
    """What may still be picked or shipped: on_hand less every held part of it."""
    expr: ColumnElement[Any] = STOCK.c.on_hand
    for column in tables.HELD:
        expr = expr - STOCK.c[column]
    return expr


async def change_stock(
    conn: AsyncConnection,
    warehouse_id: str,
    sku: str,
    lot: str,
    deltas: dict[str, int],
    now: datetime,
) -> bool:
    """Add ``deltas`` (columns of ``stock``) to one (warehouse, sku, lot) in one
    conditional UPDATE: False, having changed nothing, when a column would go negative
    or more would be held than is on hand. The row is created first when missing."""
    deltas = {column: d for column, d in deltas.items() if d}
    if not deltas:
        return True
    await add_stock(conn, warehouse_id, sku, lot, 0, now)
    # available after the change = available now + d(on_hand) - sum of d(held) >= 0
    shift = deltas.get("on_hand", 0) - sum(deltas.get(c, 0) for c in tables.HELD)
    shape = tuple((column, d < 0) for column, d in deltas.items())
    params: dict[str, Any] = {"at_warehouse": warehouse_id, "at_sku": sku, "at_lot": lot}
    params["now_at"] = now
    for column, d in deltas.items():
        params[f"add_{column}"] = d
        if d < 0:
            params[f"least_{column}"] = -d
    if shift < 0:
        params["shortfall"] = -shift
    result = await conn.execute(_change_stock(shape, shift < 0), params)
    return bool(result.rowcount == 1)


@cache
def _change_stock(shape: tuple[tuple[str, bool], ...], lowers_available: bool) -> Update:
    """The UPDATE of ``change_stock`` for one shape: the columns changed, which of them
    go down (each guarded not to go negative), and whether what is available goes down
    (guarded too). Few shapes occur: a pick, a put-away, an adjustment's statuses."""
    stmt = (
        update(STOCK)
        .where(
            STOCK.c.warehouse_id == bindparam("at_warehouse"),
            STOCK.c.sku == bindparam("at_sku"),
            STOCK.c.lot == bindparam("at_lot"),
        )
        .values(
            {STOCK.c[c]: STOCK.c[c] + bindparam(f"add_{c}", type_=COUNT) for c, _ in shape}
            | {"updated_at": bindparam("now_at")}
        )
    )
    for column, lowers in shape:
        if lowers:
            stmt = stmt.where(STOCK.c[column] >= bindparam(f"least_{column}", type_=COUNT))
    if lowers_available:
        stmt = stmt.where(available_expression() >= bindparam("shortfall", type_=COUNT))
    return stmt


async def locked_stock(conn: AsyncConnection, warehouse_id: str, skus: Iterable[str]) -> list[Any]:
    """The stock rows of these skus at the warehouse, locked, in (sku, lot) order: the
    lock order every stock writer keeps (after the warehouse row)."""
    params = {"warehouse_id": warehouse_id, "skus": sorted(set(skus))}
    return list((await conn.execute(_LOCKED_STOCK, params)).all())


_LOCKED_STOCK = (
    select(STOCK)
    .where(
        STOCK.c.warehouse_id == bindparam("warehouse_id"),
        STOCK.c.sku.in_(bindparam("skus", expanding=True)),
    )
    .order_by(STOCK.c.sku, STOCK.c.lot)
    .with_for_update()
)
