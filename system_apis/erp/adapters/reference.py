"""The built-in reference ERP: the canonical model kept directly on SQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import uuid_utils
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from shared.db import Database, Tx
from shared.models import Money
from system_apis.erp import db as tables
from system_apis.erp.adapters.customers import ReferenceCustomers
from system_apis.erp.adapters.purchasing import ReferencePurchasing
from system_apis.erp.adapters.sales import ReferenceSales
from system_apis.erp.port import DuplicateRecord, Invalid
from system_apis.erp.schemas import (
    Invoice,
    InvoiceIn,
    InvoiceLine,
    Item,
    ItemIn,
)


def _item(row: Any) -> Item:
    return Item(
        sku=row.sku,
        name=row.name,
        base_uom=row.base_uom,
        unit_price=Money(row.price_minor, row.currency),
        created_at=row.created_at,
    )


class ReferenceErp(ReferenceCustomers, ReferenceSales, ReferencePurchasing):
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create_item(self, tx: Tx, item: ItemIn) -> Item:
        now = datetime.now(UTC)
        try:
            async with tx.conn.begin_nested():
                await tx.conn.execute(
                    insert(tables.items).values(
                        sku=item.sku,
                        name=item.name,
                        base_uom=item.base_uom,
                        price_minor=item.unit_price.amount_minor,
                        currency=item.unit_price.currency,
                        created_at=now,
                    )
                )
        except IntegrityError as exc:
            raise DuplicateRecord("duplicate-item", f"Item {item.sku} already exists.") from exc
        return Item(item.sku, item.name, item.base_uom, item.unit_price, now)

    async def get_item(self, sku: str) -> Item | None:
        async with self.db.read() as conn:
            row = (
                await conn.execute(select(tables.items).where(tables.items.c.sku == sku))
            ).first()
        return _item(row) if row else None

    async def list_items(self, skus: list[str] | None, after: str | None, limit: int) -> list[Item]:
        query = select(tables.items).order_by(tables.items.c.sku).limit(limit)
        if skus:
            query = query.where(tables.items.c.sku.in_(skus))
        if after:
            query = query.where(tables.items.c.sku > after)
        async with self.db.read() as conn:
            return [_item(row) for row in await conn.execute(query)]

    async def create_invoice(self, tx: Tx, invoice: InvoiceIn) -> Invoice:
        currencies = {line.unit_price.currency for line in invoice.lines}
        if len(currencies) != 1:
            raise Invalid("mixed-currencies", "All invoice lines must share one currency.")
        currency = currencies.pop()
        invoice_id = f"INV-{uuid_utils.uuid7()}"
        now = datetime.now(UTC)
        lines = [
            InvoiceLine(
                sku=line.sku,
                quantity=line.quantity,
                unit_price=line.unit_price,
                amount=Money(line.quantity * line.unit_price.amount_minor, currency),
            )
            for line in invoice.lines
        ]
        total = Money(sum(line.amount.amount_minor for line in lines), currency)
        try:
            async with tx.conn.begin_nested():
                await tx.conn.execute(
                    insert(tables.invoices).values(
                        invoice_id=invoice_id,
                        order_id=invoice.order_id,
                        shipment_id=invoice.shipment_id,
                        customer_id=invoice.customer_id,
                        status="issued",
                        total_minor=total.amount_minor,
                        currency=currency,
                        created_at=now,
                    )
                )
        except IntegrityError as exc:
            raise DuplicateRecord(
                "duplicate-invoice", f"Shipment {invoice.shipment_id} is already invoiced."
            ) from exc
        await tx.conn.execute(
            insert(tables.invoice_lines),
            [
                {
                    "invoice_id": invoice_id,
                    "line_no": n,
                    "sku": line.sku,
                    "quantity": line.quantity,
                    "unit_price_minor": line.unit_price.amount_minor,
                    "amount_minor": line.amount.amount_minor,
                }
                for n, line in enumerate(lines, start=1)
            ],
        )
        return Invoice(
            invoice_id=invoice_id,
            order_id=invoice.order_id,
            shipment_id=invoice.shipment_id,
            customer_id=invoice.customer_id,
            status="issued",
            total=total,
            lines=lines,
            created_at=now,
        )

    async def list_invoices(
        self, order_ids: list[str], after: str | None, limit: int
    ) -> list[Invoice]:
        query = select(tables.invoices).order_by(tables.invoices.c.invoice_id).limit(limit)
        if order_ids:
            query = query.where(tables.invoices.c.order_id.in_(order_ids))
        if after:
            query = query.where(tables.invoices.c.invoice_id > after)
        async with self.db.read() as conn:
            heads = (await conn.execute(query)).all()
            ids = [h.invoice_id for h in heads]
            line_rows = (
                await conn.execute(
                    select(tables.invoice_lines)
                    .where(tables.invoice_lines.c.invoice_id.in_(ids))
                    .order_by(tables.invoice_lines.c.invoice_id, tables.invoice_lines.c.line_no)
                )
            ).all()
        by_invoice: dict[str, list[InvoiceLine]] = {}
        for head in heads:
            by_invoice[head.invoice_id] = []
        currency_of = {h.invoice_id: h.currency for h in heads}
        for row in line_rows:
            cur = currency_of[row.invoice_id]
            by_invoice[row.invoice_id].append(
                InvoiceLine(
                    row.sku,
                    row.quantity,
                    Money(row.unit_price_minor, cur),
                    Money(row.amount_minor, cur),
                )
            )
        return [
            Invoice(
                invoice_id=h.invoice_id,
                order_id=h.order_id,
                shipment_id=h.shipment_id,
                customer_id=h.customer_id,
                status=h.status,
                total=Money(h.total_minor, h.currency),
                lines=by_invoice[h.invoice_id],
                created_at=h.created_at,
            )
            for h in heads
        ]
