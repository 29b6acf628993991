"""Keeping the invoice mirror in step with the ERP after a payment or a credit note,
and telling the portal when an invoice's status moved (``invoice.status_changed``,
subject ``invoice:{id}``, sequence = the invoice's version).

Whichever path records an invoice in the mirror first announces it
(``invoice.issued``): the invoicing of its shipment, or a payment or credit note that
touched it in the ERP between the ERP issuing it and billing recording it. The other
finds it recorded and announces nothing, so the orders service hears of each invoice
exactly once."""

from __future__ import annotations

from collections.abc import Iterable

from process_apis.billing.invoices import repository as repo
from process_apis.billing.invoices.schemas import Invoice
from shared.db import Tx
from shared.events.catalog import STREAM_BILLING, InvoiceIssued, InvoiceStatusChanged, Line
from shared.events.catalog import Money as EventMoney
from shared.events.envelope import Event, new_event
from shared.models import Money

EVENT_SOURCE = "tally.billing"


def event_money(money: Money) -> EventMoney:
    return EventMoney(money.amount_minor, money.currency)


async def refresh_all(tx: Tx, fresh: Iterable[Invoice], causation: Event | None = None) -> None:
    """Writes each invoice's current figures; one ``invoice.status_changed`` per
    invoice whose status moved."""
    for invoice in fresh:
        moved = await repo.refresh(tx.conn, invoice)
        if moved == repo.INSERTED:
            tx.emit(STREAM_BILLING, issued_event(invoice, causation))
            continue
        if not isinstance(moved, repo.Moved):
            continue
        outstanding = invoice.outstanding or invoice.total
        tx.emit(
            STREAM_BILLING,
            new_event(
                source=EVENT_SOURCE,
                type_="invoice.status_changed",
                subject=f"invoice:{invoice.invoice_id}",
                sequence=moved.version,
                payload=InvoiceStatusChanged(
                    invoice_id=invoice.invoice_id,
                    order_id=invoice.order_id,
                    customer_id=invoice.customer_id,
                    status=invoice.status,
                    outstanding=event_money(outstanding),
                ),
                causation=causation,
            ),
        )


def issued_event(invoice: Invoice, causation: Event | None) -> Event:
    return new_event(
        source=EVENT_SOURCE,
        type_="invoice.issued",
        subject=invoice.invoice_id,
        sequence=1,
        payload=InvoiceIssued(
            invoice_id=invoice.invoice_id,
            erp_invoice_id=invoice.invoice_id,
            order_id=invoice.order_id,
            shipment_id=invoice.shipment_id,
            customer_id=invoice.customer_id,
            total=event_money(invoice.total),
            tax=event_money(invoice.tax) if invoice.tax else None,
            due_date=invoice.due_date.isoformat() if invoice.due_date else None,
            lines=[Line(line.sku, line.quantity) for line in invoice.lines],
        ),
        causation=causation,
    )
