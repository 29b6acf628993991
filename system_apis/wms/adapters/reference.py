"""The built-in reference WMS: the canonical model kept directly on SQL.

Stock changes are conditional UPDATEs (``on_hand >= :q``), never read-modify-write in
Python; the rows a shipment draws on are locked first (``FOR UPDATE`` on PostgreSQL;
SQLite's transaction already holds the write lock).
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any

import uuid_utils
from sqlalchemy import Integer, Select, bindparam, insert, select, tuple_
from sqlalchemy.exc import IntegrityError

from shared.db import Database, Tx, savepoint
from system_apis.wms import db as tables
from system_apis.wms.adapters.common import (
    add_stock,
    bump_stock_version,
    lot_out,
    stock_version,
)
from system_apis.wms.adapters.deliveries import ReferenceDeliveries
from system_apis.wms.adapters.fulfillment import BY_ID, ReferenceFulfillment, load_orders
from system_apis.wms.adapters.picks import ReferencePicks
from system_apis.wms.adapters.putaways import ReferencePutAways
from system_apis.wms.adapters.return_authorizations import ReferenceReturnAuthorizations
from system_apis.wms.adapters.returns import ReferenceReturns
from system_apis.wms.adapters.shortages import ReferenceShortages
from system_apis.wms.adapters.stock_changes import ReferenceStockChanges
from system_apis.wms.port import DuplicateWarehouse
from system_apis.wms.schemas import (
    FulfillmentOrder,
    Receipt,
    ReceiptIn,
    StockLine,
    StockPosition,
    Warehouse,
    WarehouseIn,
)


class ReferenceWms(
    ReferenceFulfillment,
    ReferencePicks,
    ReferencePutAways,
    ReferenceShortages,
    ReferenceDeliveries,
    ReferenceStockChanges,
    ReferenceReturns,
    ReferenceReturnAuthorizations,
):
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- warehouses ------------------------------------------------------
    async def create_warehouse(self, tx: Tx, warehouse: WarehouseIn) -> Warehouse:
        now = datetime.now(UTC)
        try:
            async with savepoint(tx.conn):
                await tx.conn.execute(
                    insert(tables.warehouses).values(
                        warehouse_id=warehouse.warehouse_id,
                        name=warehouse.name,
                        region=warehouse.region,
                        created_at=now,
                    )
                )
        except IntegrityError as exc:
            raise DuplicateWarehouse(f"Warehouse {warehouse.warehouse_id} already exists.") from exc
        return Warehouse(warehouse.warehouse_id, warehouse.name, warehouse.region, now)

    async def list_warehouses(self, after: str | None, limit: int) -> list[Warehouse]:
        table = tables.warehouses
        query = select(table).order_by(table.c.warehouse_id).limit(limit)
        if after:
            query = query.where(table.c.warehouse_id > after)
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [Warehouse(r.warehouse_id, r.name, r.region, r.created_at) for r in rows]

    # -- receipts --------------------------------------------------------
    async def post_receipt(self, tx: Tx, receipt: ReceiptIn) -> Receipt:
        # The warehouse row first (it orders the warehouse's stock changes), then stock.
        await bump_stock_version(tx.conn, receipt.warehouse_id)
        receipt_id = f"RCV-{uuid_utils.uuid7()}"
        now = datetime.now(UTC)
        await tx.conn.execute(
            insert(tables.receipts).values(
                receipt_id=receipt_id,
                warehouse_id=receipt.warehouse_id,
                received_at=now,
                asn_id=receipt.asn_id,
                purchase_order_id=receipt.purchase_order_id,
            )
        )
        await tx.conn.execute(
            insert(tables.receipt_lines),
            [
                {
                    "receipt_id": receipt_id,
                    "line_no": n,
                    "sku": line.sku,
                    "lot": line.lot or "",
                    "quantity": line.quantity,
                }
                for n, line in enumerate(receipt.lines, start=1)
            ],
        )
        # Sorted key order: the same lock order as every other stock writer.
        for line in sorted(receipt.lines, key=lambda x: (x.sku, x.lot or "")):
            await add_stock(
                tx.conn, receipt.warehouse_id, line.sku, line.lot or "", line.quantity, now
            )
        lines = [StockLine(line.sku, line.quantity, line.lot) for line in receipt.lines]
        return Receipt(
            receipt_id, receipt.warehouse_id, lines, now, receipt.asn_id, receipt.purchase_order_id
        )

    async def get_receipt(self, receipt_id: str) -> Receipt | None:
        async with self.db.read() as conn:
            head = (
                await conn.execute(
                    select(tables.receipts).where(tables.receipts.c.receipt_id == receipt_id)
                )
            ).first()
            if head is None:
                return None
            rows = (
                await conn.execute(
                    select(tables.receipt_lines)
                    .where(tables.receipt_lines.c.receipt_id == receipt_id)
                    .order_by(tables.receipt_lines.c.line_no)
                )
            ).all()
        lines = [StockLine(r.sku, r.quantity, lot_out(r.lot)) for r in rows]
        return Receipt(
            head.receipt_id,
            head.warehouse_id,
            lines,
            head.received_at,
            head.asn_id,
            head.purchase_order_id,
        )

    # -- fulfillment orders (reads; writes are in ReferenceFulfillment) --
    async def get_fulfillment_order(self, fulfillment_order_id: str) -> FulfillmentOrder | None:
        async with self.db.read() as conn:
            found = await load_orders(conn, BY_ID, {"fulfillment_order_id": fulfillment_order_id})
        return found[0] if found else None

    async def list_fulfillment_orders(
        self, order_ids: list[str], statuses: list[str], after: str | None, limit: int
    ) -> list[FulfillmentOrder]:
        query = _fulfillment_orders(bool(order_ids), bool(statuses), bool(after))
        given = {"order_ids": order_ids, "statuses": statuses, "after": after}
        params = {name: value for name, value in given.items() if value} | {"limit": limit}
        async with self.db.read() as conn:
            return await load_orders(conn, query, params)

    # -- stock -----------------------------------------------------------
    async def stock_version(self, tx: Tx, warehouse_id: str) -> int:
        return await stock_version(tx.conn, warehouse_id)

    async def list_stock(
        self,
        skus: list[str] | None,
        warehouse_id: str | None,
        after: tuple[str, str, str] | None,
        limit: int,
    ) -> list[StockPosition]:
        table = tables.stock
        key = (table.c.warehouse_id, table.c.sku, table.c.lot)
        query = select(table).order_by(*key).limit(limit)
        if skus:
            query = query.where(table.c.sku.in_(skus))
        if warehouse_id:
            query = query.where(table.c.warehouse_id == warehouse_id)
        if after:
            query = query.where(tuple_(*key) > tuple_(*after))
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [
            StockPosition(
                warehouse_id=r.warehouse_id,
                sku=r.sku,
                lot=lot_out(r.lot),
                on_hand=r.on_hand,
                updated_at=r.updated_at,
                quality_control=r.quality_control,
                damaged=r.damaged,
                hold=r.hold,
                picked=r.picked,
                available=r.on_hand - sum(getattr(r, c) for c in tables.HELD),
            )
            for r in rows
        ]


@cache
def _fulfillment_orders(by_order: bool, by_status: bool, after: bool) -> Select[Any]:
    """The page of fulfillment orders for one combination of filters (the pick queue
    polls one of them all day), built once; run with order_ids, statuses, after, limit."""
    table = tables.fulfillment_orders
    query = (
        select(table)
        .order_by(table.c.fulfillment_order_id)
        .limit(bindparam("limit", type_=Integer))
    )
    if by_order:
        query = query.where(table.c.order_id.in_(bindparam("order_ids", expanding=True)))
    if by_status:
        query = query.where(table.c.status.in_(bindparam("statuses", expanding=True)))
    if after:
        query = query.where(table.c.fulfillment_order_id > bindparam("after"))
    return query
