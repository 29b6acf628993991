"""Billing's documents as the portal shows them: invoices with their payments and
credit notes (batched through the request's DataLoaders), and the statement."""

from __future__ import annotations

from datetime import date, datetime

import strawberry

from experience_apis.portal.context import PortalContext
from experience_apis.portal.money import Money
from experience_apis.portal.wire import (
    CreditNoteDoc,
    InvoiceDoc,
    OpenInvoiceDoc,
    PaymentDoc,
    StatementDoc,
)

Info = strawberry.Info[PortalContext, None]


@strawberry.type
class InvoiceLine:
    sku: str
    quantity: int
    unit_price: Money | None
    amount: Money | None = strawberry.field(description="Net: quantity x unit price.")
    tax: Money | None
    credited_quantity: int


@strawberry.type(description="A payment applied to this invoice.")
class InvoicePayment:
    payment_id: strawberry.ID
    received_on: date | None
    amount: Money = strawberry.field(description="The part of the payment applied here.")
    payment_total: Money

    @classmethod
    def of(cls, doc: PaymentDoc, invoice_id: str) -> InvoicePayment:
        applied = [a for a in doc.applied if a.invoice_id == invoice_id]
        amount = applied[0].amount if applied else doc.amount
        if len(applied) > 1:  # one payment applied in parts
            total = sum(a.amount.amount_minor for a in applied)
            amount = type(amount)(amount_minor=total, currency=amount.currency)
        return cls(
            payment_id=strawberry.ID(doc.payment_id),
            received_on=doc.received_on,
            amount=Money.exactly(amount),
            payment_total=Money.exactly(doc.amount),
        )


@strawberry.type
class CreditNoteLine:
    sku: str
    quantity: int = strawberry.field(description="Units taken back (0: a price correction).")
    amount: Money
    tax: Money | None


@strawberry.type(description="A credit note against an invoice (a return or a price correction).")
class CreditNote:
    id: strawberry.ID
    invoice_id: strawberry.ID
    order_id: strawberry.ID
    reason: str = strawberry.field(description="return, price_correction or other.")
    return_id: strawberry.ID | None = strawberry.field(description="The RMA it follows, if any.")
    subtotal: Money | None
    tax: Money | None
    total: Money
    lines: list[CreditNoteLine]
    created_at: datetime | None

    @classmethod
    def of(cls, doc: CreditNoteDoc) -> CreditNote:
        return cls(
            id=strawberry.ID(doc.credit_note_id),
            invoice_id=strawberry.ID(doc.invoice_id),
            order_id=strawberry.ID(doc.order_id),
            reason=doc.reason,
            return_id=strawberry.ID(doc.rma_id) if doc.rma_id else None,
            subtotal=Money.of(doc.subtotal),
            tax=Money.of(doc.tax),
            total=Money.exactly(doc.total),
            lines=[
                CreditNoteLine(
                    sku=line.sku,
                    quantity=line.quantity,
                    amount=Money.exactly(line.amount),
                    tax=Money.of(line.tax),
                )
                for line in doc.lines
            ],
            created_at=doc.created_at,
        )


async def invoice_payments(root: Invoice, info: Info) -> list[InvoicePayment]:
    docs = await info.context.caller.loaders.payments.load(str(root.id))
    return [InvoicePayment.of(doc, str(root.id)) for doc in docs]


async def invoice_credit_notes(root: Invoice, info: Info) -> list[CreditNote]:
    docs = await info.context.caller.loaders.credit_notes.load(str(root.id))
    return [CreditNote.of(doc) for doc in docs]


@strawberry.type(description="An invoice issued for one shipment of an order.")
class Invoice:
    id: strawberry.ID
    order_id: strawberry.ID
    shipment_id: strawberry.ID | None
    status: str = strawberry.field(description="issued, partially_paid, paid or credited.")
    subtotal: Money | None
    tax: Money | None
    total: Money
    paid: Money | None
    credited: Money | None
    outstanding: Money | None
    due_date: date | None
    overdue: bool
    lines: list[InvoiceLine]
    issued_at: datetime | None

    payments: list[InvoicePayment] = strawberry.field(
        resolver=invoice_payments, description="Batched across the query's invoices."
    )
    credit_notes: list[CreditNote] = strawberry.field(
        resolver=invoice_credit_notes, description="Batched across the query's invoices."
    )

    @classmethod
    def of(cls, doc: InvoiceDoc) -> Invoice:
        return cls(
            id=strawberry.ID(doc.invoice_id),
            order_id=strawberry.ID(doc.order_id),
            shipment_id=strawberry.ID(doc.shipment_id) if doc.shipment_id else None,
            status=doc.status,
            subtotal=Money.of(doc.subtotal),
            tax=Money.of(doc.tax),
            total=Money.exactly(doc.total),
            paid=Money.of(doc.paid),
            credited=Money.of(doc.credited),
            outstanding=Money.of(doc.outstanding),
            due_date=doc.due_date,
            overdue=doc.overdue,
            lines=[
                InvoiceLine(
                    sku=line.sku,
                    quantity=line.quantity,
                    unit_price=Money.of(line.unit_price),
                    amount=Money.of(line.amount),
                    tax=Money.of(line.tax),
                    credited_quantity=line.credited_quantity,
                )
                for line in doc.lines
            ],
            issued_at=doc.issued_at,
        )


@strawberry.type
class OpenInvoice:
    invoice_id: strawberry.ID
    due_date: date | None
    outstanding: Money
    overdue: bool

    @classmethod
    def of(cls, doc: OpenInvoiceDoc) -> OpenInvoice:
        return cls(
            invoice_id=strawberry.ID(doc.invoice_id),
            due_date=doc.due_date,
            outstanding=Money.exactly(doc.outstanding),
            overdue=doc.overdue,
        )


@strawberry.type(description="One document of the statement with the running balance after it.")
class StatementEntry:
    kind: str = strawberry.field(description="invoice, credit_note or payment.")
    document_id: strawberry.ID
    at: datetime
    amount: Money
    balance: Money
    applied: Money | None
    invoice_id: strawberry.ID | None


@strawberry.type(description="The customer's statement of account, as of now (from the ERP).")
class Statement:
    currency: str
    entries: list[StatementEntry]
    balance: Money
    open_invoices: list[OpenInvoice]
    unapplied_credit: Money
    overdue: Money
    as_of: datetime

    @classmethod
    def of(cls, doc: StatementDoc) -> Statement:
        return cls(
            currency=doc.currency,
            entries=[
                StatementEntry(
                    kind=e.kind,
                    document_id=strawberry.ID(e.document_id),
                    at=e.at,
                    amount=Money.exactly(e.amount),
                    balance=Money.exactly(e.balance),
                    applied=Money.of(e.applied),
                    invoice_id=strawberry.ID(e.invoice_id) if e.invoice_id else None,
                )
                for e in doc.entries
            ],
            balance=Money.exactly(doc.balance),
            open_invoices=[OpenInvoice.of(i) for i in doc.open_invoices],
            unapplied_credit=Money.exactly(doc.unapplied_credit),
            overdue=Money.exactly(doc.overdue),
            as_of=doc.as_of,
        )
