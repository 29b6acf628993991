"""The built-in reference ERP: the canonical model kept directly on SQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, or_, select
from sqlalchemy.exc import IntegrityError

from shared.db import Database, Tx, savepoint
from shared.models import Money
from system_apis.erp import db as tables
from system_apis.erp.adapters.credit_notes import ReferenceCreditNotes
from system_apis.erp.adapters.customers import ReferenceCustomers
from system_apis.erp.adapters.invoices import ReferenceInvoices
from system_apis.erp.adapters.payments import ReferencePayments
from system_apis.erp.adapters.purchasing import ReferencePurchasing
from system_apis.erp.adapters.sales import ReferenceSales
from system_apis.erp.port import DuplicateRecord
from system_apis.erp.schemas import Item, ItemIn


def _item(row: Any) -> Item:
    return Item(
        sku=row.sku,
        name=row.name,
        base_uom=row.base_uom,
        unit_price=Money(row.price_minor, row.currency),
        tax_class=row.tax_class,
        created_at=row.created_at,
    )


class ReferenceErp(
    ReferenceCustomers,
    ReferenceSales,
    ReferenceInvoices,
    ReferenceCreditNotes,
    ReferencePayments,
    ReferencePurchasing,
):
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create_item(self, tx: Tx, item: ItemIn) -> Item:
        now = datetime.now(UTC)
        try:
            async with savepoint(tx.conn):
                await tx.conn.execute(
                    insert(tables.items).values(
                        sku=item.sku,
                        name=item.name,
                        base_uom=item.base_uom,
                        price_minor=item.unit_price.amount_minor,
                        currency=item.unit_price.currency,
                        tax_class=item.tax_class,
                        created_at=now,
                    )
                )
        except IntegrityError as exc:
            raise DuplicateRecord("duplicate-item", f"Item {item.sku} already exists.") from exc
        return Item(
            sku=item.sku,
            name=item.name,
            base_uom=item.base_uom,
            unit_price=item.unit_price,
            tax_class=item.tax_class,
            created_at=now,
        )

    async def get_item(self, sku: str) -> Item | None:
        async with self.db.read() as conn:
            row = (
                await conn.execute(select(tables.items).where(tables.items.c.sku == sku))
            ).first()
        return _item(row) if row else None

    async def list_items(
        self, skus: list[str] | None, after: str | None, limit: int, search: str | None = None
    ) -> list[Item]:
        query = select(tables.items).order_by(tables.items.c.sku).limit(limit)
        if skus:
            query = query.where(tables.items.c.sku.in_(skus))
        if search:
            wanted = search.lower()
            query = query.where(
                or_(
                    func.lower(tables.items.c.sku).contains(wanted, autoescape=True),
                    func.lower(tables.items.c.name).contains(wanted, autoescape=True),
                )
            )
        if after:
            query = query.where(tables.items.c.sku > after)
        async with self.db.read() as conn:
            return [_item(row) for row in await conn.execute(query)]
