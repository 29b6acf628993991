"""SQL for credit notes (SQLAlchemy Core)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection

from process_apis.billing.credit_notes.schemas import CreditNote, CreditNoteLine
from process_apis.billing.db import credit_notes
from process_apis.billing.invoices.repository import insert_or_skip
from shared.models import Money

# Built once, with bind parameters (a note per invoice a return credits): a statement
# built per call costs SQLAlchemy more than running it.
_KNOWN = select(credit_notes.c.credit_note_id).where(
    (credit_notes.c.credit_note_id == bindparam("credit_note_id"))
    | (
        (credit_notes.c.invoice_id == bindparam("invoice_id"))
        & (credit_notes.c.reference == bindparam("reference"))
    )
)


async def insert_note(conn: AsyncConnection, note: CreditNote) -> bool:
    """False when billing has it already (nothing is written then)."""
    cause = {
        "credit_note_id": note.credit_note_id,
        "invoice_id": note.invoice_id,
        "reference": note.reference,
    }
    if await conn.scalar(_KNOWN, cause) is not None:
        return False
    row = {
        "credit_note_id": note.credit_note_id,
        "invoice_id": note.invoice_id,
        "order_id": note.order_id,
        "customer_id": note.customer_id,
        "reason": note.reason,
        "reference": note.reference,
        "note": note.note,
        "return_id": note.return_id,
        "rma_id": note.rma_id,
        "currency": note.total.currency,
        "subtotal_minor": note.subtotal.amount_minor,
        "tax_minor": note.tax.amount_minor,
        "total_minor": note.total.amount_minor,
        "lines": [
            {
                "sku": line.sku,
                "quantity": line.quantity,
                "amount_minor": line.amount.amount_minor,
                "tax_minor": line.tax.amount_minor,
            }
            for line in note.lines
        ],
        "created_at": note.created_at,
    }
    written = await conn.execute(insert_or_skip(conn, credit_notes), row)
    return bool(written.rowcount == 1)  # 0: a concurrent transaction recorded it first


async def get(conn: AsyncConnection, credit_note_id: str) -> CreditNote | None:
    row = (
        await conn.execute(
            select(credit_notes).where(credit_notes.c.credit_note_id == credit_note_id)
        )
    ).first()
    return _note(row) if row is not None else None


async def page(
    conn: AsyncConnection,
    *,
    invoice_ids: tuple[str, ...],
    customer_id: str | None,
    after: str | None,
    limit: int,
) -> list[CreditNote]:
    query = select(credit_notes).order_by(credit_notes.c.credit_note_id).limit(limit)
    if invoice_ids:
        query = query.where(credit_notes.c.invoice_id.in_(sorted(set(invoice_ids))))
    if customer_id is not None:
        query = query.where(credit_notes.c.customer_id == customer_id)
    if after:
        query = query.where(credit_notes.c.credit_note_id > after)
    return [_note(row) for row in await conn.execute(query)]


def _note(row: Any) -> CreditNote:
    cur = row.currency
    return CreditNote(
        credit_note_id=row.credit_note_id,
        invoice_id=row.invoice_id,
        order_id=row.order_id,
        customer_id=row.customer_id,
        reason=row.reason,
        reference=row.reference,
        note=row.note,
        lines=[
            CreditNoteLine(
                sku=line["sku"],
                quantity=int(line["quantity"]),
                amount=Money(int(line["amount_minor"]), cur),
                tax=Money(int(line["tax_minor"]), cur),
            )
            for line in row.lines
        ],
        subtotal=Money(row.subtotal_minor, cur),
        tax=Money(row.tax_minor, cur),
        total=Money(row.total_minor, cur),
        created_at=row.created_at,
        return_id=row.return_id,
        rma_id=row.rma_id,
    )
