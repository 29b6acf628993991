"""Credit notes of the reference ERP: what is taken back of an invoice, per sku, never
more than it invoiced (units, net and tax each), once per cause (``reference``).

A credit note takes the customer's lock, then the invoice's, and re-reads the lines:
two concurrent credits of one invoice take turns and the second sees the first. A
credit on an invoice already paid in part or whole moves the payment that no longer
has anything to pay back to that payment's unapplied amount (the newest payment
first), so the outstanding never goes negative and the money stays the customer's."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import uuid_utils
from sqlalchemy import Select, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db import Database, Tx, savepoint
from shared.models import Money
from system_apis.erp import db as tables
from system_apis.erp.adapters.invoices import lock_customer, lock_invoice, move_money
from system_apis.erp.port import DuplicateRecord, Invalid
from system_apis.erp.schemas import CreditNote, CreditNoteIn, CreditNoteLine

CN = tables.credit_notes
CNL = tables.credit_note_lines
INV = tables.invoices
INVL = tables.invoice_lines
PAY = tables.payments
APP = tables.payment_applications


async def load_credit_notes(conn: AsyncConnection, query: Select[Any]) -> list[CreditNote]:
    heads = (await conn.execute(query)).all()
    ids = [h.credit_note_id for h in heads]
    lines: dict[str, list[CreditNoteLine]] = {i: [] for i in ids}
    currency_of = {h.credit_note_id: h.currency for h in heads}
    if ids:
        rows = await conn.execute(
            select(CNL)
            .where(CNL.c.credit_note_id.in_(ids))
            .order_by(CNL.c.credit_note_id, CNL.c.line_no)
        )
        for r in rows:
            cur = currency_of[r.credit_note_id]
            lines[r.credit_note_id].append(
                CreditNoteLine(
                    r.sku, r.quantity, Money(r.amount_minor, cur), Money(r.tax_minor, cur)
                )
            )
    return [
        CreditNote(
            credit_note_id=h.credit_note_id,
            invoice_id=h.invoice_id,
            order_id=h.order_id,
            customer_id=h.customer_id,
            reason=h.reason,
            reference=h.reference,
            note=h.note,
            lines=lines[h.credit_note_id],
            subtotal=Money(h.subtotal_minor, h.currency),
            tax=Money(h.tax_minor, h.currency),
            total=Money(h.total_minor, h.currency),
            created_at=h.created_at,
        )
        for h in heads
    ]


def _duplicate(invoice_id: str, reference: str, credit_note_id: str) -> DuplicateRecord:
    return DuplicateRecord(
        "duplicate-credit-note",
        f"Invoice {invoice_id} already has credit note {credit_note_id} for {reference}.",
        extra={"credit_note_id": credit_note_id},
    )


class _Room:
    """An invoice's lines of one sku: invoiced and credited so far."""

    def __init__(self) -> None:
        self.rows: list[Any] = []

    def total(self, column: str) -> int:
        return sum(int(getattr(r, column)) for r in self.rows)


def _check(note: CreditNoteIn, currency: str, rooms: dict[str, _Room]) -> dict[str, list[int]]:
    """The credit per sku [quantity, net, tax], refused where it does not fit."""
    for line in note.lines:
        for money in (line.amount, line.tax):
            if money.currency != currency:
                raise Invalid(
                    "currency-mismatch",
                    f"Invoice {note.invoice_id} is in {currency}, not {money.currency}.",
                )
    wanted: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for line in note.lines:
        if line.sku not in rooms:
            raise Invalid("not-on-invoice", f"{line.sku} is not on invoice {note.invoice_id}.")
        per_sku = wanted[line.sku]
        per_sku[0] += line.quantity
        per_sku[1] += line.amount.amount_minor
        per_sku[2] += line.tax.amount_minor
    if not any(any(v) for v in wanted.values()):
        raise Invalid("empty-credit", "A credit note must credit something.")
    for sku, (quantity, net, tax) in sorted(wanted.items()):
        room = rooms[sku]
        for what, asked, column, done in (
            ("units", quantity, "quantity", "credited_quantity"),
            ("net", net, "amount_minor", "credited_minor"),
            ("tax", tax, "tax_minor", "credited_tax_minor"),
        ):
            invoiced, credited = room.total(column), room.total(done)
            if credited + asked > invoiced:
                raise Invalid(
                    "over-credit",
                    f"{sku} on invoice {note.invoice_id}: {what} invoiced {invoiced}, "
                    f"credited {credited}, asked {asked}.",
                )
    return wanted


async def _take_from_lines(
    conn: AsyncConnection, invoice_id: str, room: _Room, credit: list[int]
) -> None:
    """Books a sku's credit on its invoice lines, each line up to its own room (in line
    order), with guarded updates."""
    left = list(credit)
    columns = (
        ("quantity", "credited_quantity"),
        ("amount_minor", "credited_minor"),
        ("tax_minor", "credited_tax_minor"),
    )
    for row in room.rows:
        take = []
        for i, (full, done) in enumerate(columns):
            n = min(left[i], int(getattr(row, full)) - int(getattr(row, done)))
            take.append(n)
            left[i] -= n
        if not any(take):
            continue
        result = await conn.execute(
            update(INVL)
            .where(
                INVL.c.invoice_id == invoice_id,
                INVL.c.line_no == row.line_no,
                INVL.c.credited_quantity + take[0] <= INVL.c.quantity,
                INVL.c.credited_minor + take[1] <= INVL.c.amount_minor,
                INVL.c.credited_tax_minor + take[2] <= INVL.c.tax_minor,
            )
            .values(
                credited_quantity=INVL.c.credited_quantity + take[0],
                credited_minor=INVL.c.credited_minor + take[1],
                credited_tax_minor=INVL.c.credited_tax_minor + take[2],
            )
        )
        assert result.rowcount == 1, "the invoice's lock holds its lines"
    assert not any(left), "checked against the same rows"


async def unapply_payments(conn: AsyncConnection, invoice_id: str, excess: int) -> None:
    """Moves ``excess`` of what payments hold of the invoice back to their unapplied
    amount, newest payment first."""
    rows = (
        await conn.execute(
            select(APP.c.payment_id, APP.c.amount_minor)
            .select_from(APP.join(PAY, PAY.c.payment_id == APP.c.payment_id))
            .where(APP.c.invoice_id == invoice_id)
            .order_by(PAY.c.created_at.desc(), PAY.c.payment_id.desc())
        )
    ).all()
    for row in rows:
        if excess <= 0:
            break
        take = min(excess, int(row.amount_minor))
        excess -= take
        where = (APP.c.payment_id == row.payment_id, APP.c.invoice_id == invoice_id)
        if take == row.amount_minor:
            await conn.execute(delete(APP).where(*where))
        else:
            await conn.execute(
                update(APP).where(*where).values(amount_minor=APP.c.amount_minor - take)
            )
        await conn.execute(
            update(PAY)
            .where(PAY.c.payment_id == row.payment_id)
            .values(unapplied_minor=PAY.c.unapplied_minor + take)
        )
        await move_money(conn, invoice_id, paid=-take)
    assert excess <= 0, "paid_minor is the sum of the applications"


class ReferenceCreditNotes:
    db: Database

    async def create_credit_note(self, tx: Tx, note: CreditNoteIn) -> CreditNote:
        conn = tx.conn
        customer_id = await conn.scalar(
            select(INV.c.customer_id).where(INV.c.invoice_id == note.invoice_id)
        )
        if customer_id is None:
            raise Invalid("unknown-invoice", f"No invoice {note.invoice_id}.")
        await lock_customer(conn, customer_id)
        head = await lock_invoice(conn, note.invoice_id)
        existing = await conn.scalar(
            select(CN.c.credit_note_id).where(
                CN.c.invoice_id == note.invoice_id, CN.c.reference == note.reference
            )
        )
        if existing is not None:
            raise _duplicate(note.invoice_id, note.reference, existing)
        rooms: dict[str, _Room] = defaultdict(_Room)
        for row in await conn.execute(
            select(INVL).where(INVL.c.invoice_id == note.invoice_id).order_by(INVL.c.line_no)
        ):
            rooms[row.sku].rows.append(row)
        wanted = _check(note, head.currency, dict(rooms))
        subtotal = sum(v[1] for v in wanted.values())
        tax = sum(v[2] for v in wanted.values())
        credit_note_id = f"CN-{uuid_utils.uuid7()}"
        now = datetime.now(UTC)
        try:
            async with savepoint(conn):
                await conn.execute(
                    insert(CN).values(
                        credit_note_id=credit_note_id,
                        invoice_id=note.invoice_id,
                        order_id=head.order_id,
                        customer_id=head.customer_id,
                        reason=note.reason,
                        reference=note.reference,
                        note=note.note,
                        subtotal_minor=subtotal,
                        tax_minor=tax,
                        total_minor=subtotal + tax,
                        currency=head.currency,
                        created_at=now,
                    )
                )
        except IntegrityError as exc:  # unreachable under the invoice's lock
            raise _duplicate(note.invoice_id, note.reference, "?") from exc
        await conn.execute(
            insert(CNL),
            [
                {
                    "credit_note_id": credit_note_id,
                    "line_no": n,
                    "sku": line.sku,
                    "quantity": line.quantity,
                    "amount_minor": line.amount.amount_minor,
                    "tax_minor": line.tax.amount_minor,
                }
                for n, line in enumerate(note.lines, start=1)
            ],
        )
        for sku, credit in sorted(wanted.items()):
            await _take_from_lines(conn, note.invoice_id, rooms[sku], credit)
        excess = head.credited_minor + subtotal + tax + head.paid_minor - head.total_minor
        if excess > 0:
            await unapply_payments(conn, note.invoice_id, excess)
        await move_money(conn, note.invoice_id, credited=subtotal + tax)
        found = await load_credit_notes(
            conn, select(CN).where(CN.c.credit_note_id == credit_note_id)
        )
        return found[0]

    async def get_credit_note(self, credit_note_id: str) -> CreditNote | None:
        async with self.db.read() as conn:
            found = await load_credit_notes(
                conn, select(CN).where(CN.c.credit_note_id == credit_note_id)
            )
        return found[0] if found else None

    async def list_credit_notes(
        self,
        *,
        invoice_id: str | None,
        customer_id: str | None,
        reference: str | None,
        after: str | None,
        limit: int,
    ) -> list[CreditNote]:
        query = select(CN).order_by(CN.c.credit_note_id).limit(limit)
        if invoice_id:
            query = query.where(CN.c.invoice_id == invoice_id)
        if customer_id:
            query = query.where(CN.c.customer_id == customer_id)
        if reference:
            query = query.where(CN.c.reference == reference)
        if after:
            query = query.where(CN.c.credit_note_id > after)
        async with self.db.read() as conn:
            return await load_credit_notes(conn, query)
