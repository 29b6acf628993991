"""SQL for invoices (SQLAlchemy Core): the mirror of the ERP's invoices."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from process_apis.billing.db import invoice_lines, invoices
from process_apis.billing.invoices.schemas import Invoice, InvoiceLine, is_overdue
from shared.models import Money


def _minor(money: Money | None) -> int:
    return money.amount_minor if money is not None else 0


def _head_values(invoice: Invoice) -> dict[str, Any]:
    return {
        "status": invoice.status,
        "total_minor": invoice.total.amount_minor,
        "subtotal_minor": _minor(invoice.subtotal)
        if invoice.subtotal
        else invoice.total.amount_minor,
        "tax_minor": _minor(invoice.tax),
        "paid_minor": _minor(invoice.paid),
        "credited_minor": _minor(invoice.credited),
        "outstanding_minor": (
            _minor(invoice.outstanding) if invoice.outstanding else invoice.total.amount_minor
        ),
        "due_date": invoice.due_date.isoformat() if invoice.due_date else None,
        "payment_terms": invoice.payment_terms,
    }


def _line_values(invoice: Invoice) -> list[dict[str, Any]]:
    return [
        {
            "invoice_id": invoice.invoice_id,
            "line_no": line.line_no or n,
            "sku": line.sku,
            "quantity": line.quantity,
            "unit_price_minor": line.unit_price.amount_minor,
            "amount_minor": line.amount.amount_minor,
            "tax_minor": _minor(line.tax),
            "tax_code": line.tax_code,
            "credited_quantity": line.credited_quantity,
            "credited_minor": _minor(line.credited),
            "credited_tax_minor": _minor(line.credited_tax),
        }
        for n, line in enumerate(invoice.lines, start=1)
    ]


def insert_or_skip(conn: AsyncConnection, table: Any) -> Any:
    """An INSERT that does nothing on a unique conflict (a concurrent writer of the
    same row), in the database's dialect."""
    dialect_insert = sqlite_insert if conn.dialect.name == "sqlite" else pg_insert
    return dialect_insert(table).on_conflict_do_nothing()


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
    written = await conn.execute(
        insert_or_skip(conn, invoices).values(
            invoice_id=invoice.invoice_id,
            order_id=invoice.order_id,
            shipment_id=invoice.shipment_id,
            customer_id=invoice.customer_id,
            currency=invoice.total.currency,
            issued_at=invoice.issued_at,
            version=1,
            **_head_values(invoice),
        )
    )
    if written.rowcount != 1:
        return False  # a concurrent transaction wrote it first
    await conn.execute(insert(invoice_lines), _line_values(invoice))
    return True


@dataclass(frozen=True)
class Moved:
    """An invoice whose status moved with a refresh: the event's sequence and status."""

    invoice: Invoice
    previous: str
    version: int


async def refresh(conn: AsyncConnection, fresh: Invoice) -> Moved | None:
    """Writes the ERP's current figures of an invoice over the mirror (inserting it if
    billing never saw it). A stale read never overwrites a newer one: credits only
    grow, and paid + credited only grows (a credit note may move paid to unapplied).
    Answers the move when the status changed."""
    locked = select(invoices).where(invoices.c.invoice_id == fresh.invoice_id).with_for_update()
    row = (await conn.execute(locked)).first()
    if row is None:
        if await insert_invoice(conn, fresh):
            return None
        row = (await conn.execute(locked)).first()  # written meanwhile: refresh it
        if row is None:
            return None
    paid, credited = _minor(fresh.paid), _minor(fresh.credited)
    if credited < row.credited_minor or paid + credited < row.paid_minor + row.credited_minor:
        return None  # an older picture than the one recorded
    values = _head_values(fresh)
    moved = fresh.status != row.status
    version = int(row.version) + (1 if moved else 0)
    await conn.execute(
        update(invoices)
        .where(invoices.c.invoice_id == fresh.invoice_id)
        .values(version=version, **values)
    )
    for line in _line_values(fresh):
        await conn.execute(
            update(invoice_lines)
            .where(
                invoice_lines.c.invoice_id == fresh.invoice_id,
                invoice_lines.c.line_no == line["line_no"],
            )
            .values(
                tax_minor=line["tax_minor"],
                tax_code=line["tax_code"],
                credited_quantity=line["credited_quantity"],
                credited_minor=line["credited_minor"],
                credited_tax_minor=line["credited_tax_minor"],
            )
        )
    return Moved(fresh, str(row.status), version) if moved else None


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
    statuses: Sequence[str] = (),
) -> list[Invoice]:
    query = select(invoices).order_by(invoices.c.invoice_id).limit(limit)
    if order_ids:
        query = query.where(invoices.c.order_id.in_(list(order_ids)))
    if customer_id is not None:
        query = query.where(invoices.c.customer_id == customer_id)
    if statuses:
        query = query.where(invoices.c.status.in_(list(statuses)))
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
                line_no=row.line_no,
                tax=Money(row.tax_minor, cur),
                tax_code=row.tax_code,
                credited_quantity=row.credited_quantity,
                credited=Money(row.credited_minor, cur),
                credited_tax=Money(row.credited_tax_minor, cur),
            )
        )
    found = []
    for head in heads:
        cur = head.currency
        due = date.fromisoformat(head.due_date) if head.due_date else None
        found.append(
            Invoice(
                invoice_id=head.invoice_id,
                order_id=head.order_id,
                shipment_id=head.shipment_id,
                customer_id=head.customer_id,
                status=head.status,
                total=Money(head.total_minor, cur),
                lines=lines[head.invoice_id],
                issued_at=head.issued_at,
                subtotal=Money(head.subtotal_minor, cur),
                tax=Money(head.tax_minor, cur),
                paid=Money(head.paid_minor, cur),
                credited=Money(head.credited_minor, cur),
                outstanding=Money(head.outstanding_minor, cur),
                due_date=due,
                overdue=is_overdue(head.outstanding_minor, due),
                payment_terms=head.payment_terms,
            )
        )
    return found
