"""SQL for payments (SQLAlchemy Core)."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import bindparam, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from process_apis.billing.db import payment_invoices, payments
from process_apis.billing.payments.schemas import AppliedAmount, Payment
from shared.bulk import BulkInsert
from shared.models import Money

# Built once, with bind parameters (one remittance booked per call): a statement built
# per call costs SQLAlchemy more than running it. Executed with the row as parameters.
_KNOWN = select(payments.c.payment_id).where(payments.c.payment_id == bindparam("payment_id"))
_INSERT = insert(payments)
_INDEX = BulkInsert(payment_invoices, ["payment_id", "invoice_id"])


async def insert_payment(conn: AsyncConnection, payment: Payment) -> bool:
    """False when billing has it already (nothing is written then)."""
    if await conn.scalar(_KNOWN, {"payment_id": payment.payment_id}) is not None:
        return False
    row = {
        "payment_id": payment.payment_id,
        "customer_id": payment.customer_id,
        "amount_minor": payment.amount.amount_minor,
        "currency": payment.amount.currency,
        "reference": payment.reference,
        "received_on": payment.received_on.isoformat(),
        "applied": [
            {"invoice_id": a.invoice_id, "amount_minor": a.amount.amount_minor}
            for a in payment.applied
        ],
        "unapplied_minor": payment.unapplied.amount_minor,
        "created_at": payment.created_at,
    }
    await conn.execute(_INSERT, row)
    applied_to = sorted({a.invoice_id for a in payment.applied})
    await _INDEX(conn, [{"payment_id": payment.payment_id, "invoice_id": i} for i in applied_to])
    return True


async def get(conn: AsyncConnection, payment_id: str) -> Payment | None:
    row = (await conn.execute(select(payments).where(payments.c.payment_id == payment_id))).first()
    return _payment(row) if row is not None else None


async def page(
    conn: AsyncConnection,
    *,
    customer_id: str | None,
    after: str | None,
    limit: int,
    invoice_ids: tuple[str, ...] = (),
) -> list[Payment]:
    query = select(payments).order_by(payments.c.payment_id).limit(limit)
    if customer_id is not None:
        query = query.where(payments.c.customer_id == customer_id)
    if invoice_ids:
        applied_to = select(payment_invoices.c.payment_id).where(
            payment_invoices.c.invoice_id.in_(sorted(set(invoice_ids)))
        )
        query = query.where(payments.c.payment_id.in_(applied_to))
    if after:
        query = query.where(payments.c.payment_id > after)
    return [_payment(row) for row in await conn.execute(query)]


def _payment(row: Any) -> Payment:
    cur = row.currency
    return Payment(
        payment_id=row.payment_id,
        customer_id=row.customer_id,
        amount=Money(row.amount_minor, cur),
        reference=row.reference,
        received_on=date.fromisoformat(row.received_on),
        applied=[
            AppliedAmount(a["invoice_id"], Money(int(a["amount_minor"]), cur)) for a in row.applied
        ],
        unapplied=Money(row.unapplied_minor, cur),
        created_at=row.created_at,
    )
