"""Helpers of the reference WMS shared by its modules."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from system_apis.wms import db as tables
from system_apis.wms.port import UnknownWarehouse


def lot_out(lot: str) -> str | None:
    return lot or None


async def require_warehouse(
    conn: AsyncConnection, warehouse_id: str, *, lock: bool = False
) -> None:
    query = select(tables.warehouses.c.warehouse_id).where(
        tables.warehouses.c.warehouse_id == warehouse_id
    )
    found = await conn.scalar(query.with_for_update() if lock else query)
    if found is None:
        raise UnknownWarehouse(f"No warehouse {warehouse_id}.")


async def bump_stock_version(conn: AsyncConnection, warehouse_id: str) -> int:
    """Raise the warehouse's stock version by one and return it (UnknownWarehouse when
    there is no such warehouse). Every stock writer calls it first: the warehouse row is
    the lock that orders the warehouse's stock changes, so versions follow commit order."""
    table = tables.warehouses
    version = await conn.scalar(
        update(table)
        .where(table.c.warehouse_id == warehouse_id)
        .values(stock_version=table.c.stock_version + 1)
        .returning(table.c.stock_version)
    )
    if version is None:
        raise UnknownWarehouse(f"No warehouse {warehouse_id}.")
    return int(version)


async def stock_version(conn: AsyncConnection, warehouse_id: str) -> int:
    table = tables.warehouses
    version = await conn.scalar(
        select(table.c.stock_version).where(table.c.warehouse_id == warehouse_id)
    )
    if version is None:
        raise UnknownWarehouse(f"No warehouse {warehouse_id}.")
    return int(version)


async def add_stock(
    conn: AsyncConnection, warehouse_id: str, sku: str, lot: str, quantity: int, now: datetime
) -> None:
    """on_hand += quantity, creating the (warehouse, sku, lot) row when it is new."""
    dialect_insert: Any = sqlite_insert if conn.dialect.name == "sqlite" else pg_insert
    stmt = dialect_insert(tables.stock).values(
        warehouse_id=warehouse_id, sku=sku, lot=lot, on_hand=quantity, updated_at=now
    )
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["warehouse_id", "sku", "lot"],
            set_={
                "on_hand": tables.stock.c.on_hand + stmt.excluded.on_hand,
                "updated_at": stmt.excluded.updated_at,
            },
        )
    )


def available_expression() -> ColumnElement[Any]:
    """What may still be picked or shipped: on_hand less every held part of it."""
    stock = tables.stock
    expr: ColumnElement[Any] = stock.c.on_hand
    for column in tables.HELD:
        expr = expr - stock.c[column]
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
    stock = tables.stock
    stmt = (
        update(stock)
        .where(stock.c.warehouse_id == warehouse_id, stock.c.sku == sku, stock.c.lot == lot)
        .values({stock.c[c]: stock.c[c] + d for c, d in deltas.items()} | {"updated_at": now})
    )
    for column, d in deltas.items():
        if d < 0:
            stmt = stmt.where(stock.c[column] >= -d)
    # available after the change = available now + d(on_hand) - sum of d(held) >= 0
    shift = deltas.get("on_hand", 0) - sum(deltas.get(c, 0) for c in tables.HELD)
    if shift < 0:
        stmt = stmt.where(available_expression() >= -shift)
    result = await conn.execute(stmt)
    return bool(result.rowcount == 1)


async def locked_stock(conn: AsyncConnection, warehouse_id: str, skus: Iterable[str]) -> list[Any]:
    """The stock rows of these skus at the warehouse, locked, in (sku, lot) order: the
    lock order every stock writer keeps (after the warehouse row)."""
    stock = tables.stock
    return list(
        (
            await conn.execute(
                select(stock)
                .where(stock.c.warehouse_id == warehouse_id, stock.c.sku.in_(sorted(set(skus))))
                .order_by(stock.c.sku, stock.c.lot)
                .with_for_update()
            )
        ).all()
    )
