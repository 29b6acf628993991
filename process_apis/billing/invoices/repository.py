"""SQL for invoices (SQLAlchemy Core)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from process_apis.billing.db import invoice_lines, invoices
from process_apis.billing.invoices.schemas import Invoice, InvoiceLine
from shared.models import Money


async def insert_invoice(conn: AsyncConnection, invoice: Invoice) -> bool:
    """False when this shipment already has its invoice (nothing is written then)."""
    known = await conn.scalar(
        select(invoices.c.invoice_id).where(
            (invoices.c.shipment_id == invoice.shipment_id)
            | (invoices.c.invoice_id == invoice.invoice_id)
        )
    )
    if known is not None:
        return False
    await conn.execute(
        insert(invoices).values(
            invoice_id=invoice.invoice_id,
            order_id=invoice.order_id,
            shipment_id=invoice.shipment_id,
            customer_id=invoice.customer_id,
            status=invoice.status,
            total_minor=invoice.total.amount_minor,
            currency=invoice.total.currency,
            issued_at=invoice.issued_at,
        )
    )
    await conn.execute(
        insert(invoice_lines),
        [
            {
                "invoice_id": invoice.invoice_id,
                "line_no": n,
                "sku": line.sku,
                "quantity": line.quantity,
                "unit_price_minor": line.unit_price.amount_minor,
                "amount_minor": line.amount.amount_minor,
            }
            for n, line in enumerate(invoice.lines, start=1)
        ],
    )
    return True


async def invoiced(conn: AsyncConnection, shipment_id: str) -> bool:
    found = await conn.scalar(
        select(invoices.c.invoice_id).where(invoices.c.shipment_id == shipment_id)
    )
    return found is not None


async def get(conn: AsyncConnection, invoice_id: str) -> Invoice | None:
    found = await _load(conn, select(invoices).where(invoices.c.invoice_id == invoice_id))
    return found[0] if found else None


async def page(
    conn: AsyncConnection,
    *,
    order_ids: Sequence[str],
    customer_id: str | None,
    after: str | None,
    limit: int,
) -> list[Invoice]:
    query = select(invoices).order_by(invoices.c.invoice_id).limit(limit)
    if order_ids:
        query = query.where(invoices.c.order_id.in_(list(order_ids)))
    if customer_id is not None:
        query = query.where(invoices.c.customer_id == customer_id)
    if after:
        query = query.where(invoices.c.invoice_id > after)
    return await _load(conn, query)


async def _load(conn: AsyncConnection, query: Any) -> list[Invoice]:
    heads = (await conn.execute(query)).all()
    if not heads:
        return []
    lines: dict[str, list[InvoiceLine]] = {head.invoice_id: [] for head in heads}
    currency = {head.invoice_id: head.currency for head in heads}
    for row in await conn.execute(
        select(invoice_lines)
        .where(invoice_lines.c.invoice_id.in_(list(lines)))
        .order_by(invoice_lines.c.invoice_id, invoice_lines.c.line_no)
    ):
        cur = currency[row.invoice_id]
        lines[row.invoice_id].append(
            InvoiceLine(
                sku=row.sku,
                quantity=row.quantity,
                unit_price=Money(row.unit_price_minor, cur),
                amount=Money(row.amount_minor, cur),
            )
        )
    return [
        Invoice(
            invoice_id=head.invoice_id,
            order_id=head.order_id,
            shipment_id=head.shipment_id,
            customer_id=head.customer_id,
            status=head.status,
            total=Money(head.total_minor, head.currency),
            lines=lines[head.invoice_id],
            issued_at=head.issued_at,
        )
        for head in heads
    ]
