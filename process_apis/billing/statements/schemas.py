"""A customer's statement of account."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

import msgspec

from shared.models import Money, MoneyTotal


class StatementEntry(msgspec.Struct):
    """One document in date order. ``amount`` is the document's (a payment's whole
    remittance); ``balance`` the running balance after it: an invoice adds its total,
    a credit note takes its total off, a payment what it applied to invoices (the rest
    is the customer's ``unapplied_credit``)."""

    kind: Literal["invoice", "credit_note", "payment"]
    document_id: str
    at: datetime
    amount: Money
    balance: MoneyTotal
    applied: Money | None = None  # payments: the part applied to invoices
    invoice_id: str | None = None  # credit notes: the invoice corrected


class OpenInvoice(msgspec.Struct):
    invoice_id: str
    due_date: date | None
    outstanding: Money
    overdue: bool


class Statement(msgspec.Struct):
    """``balance`` = invoices - credit notes - payments applied (the ERP's figure);
    ``overdue`` the outstanding of the invoices past their due date."""

    customer_id: str
    currency: str
    entries: list[StatementEntry]
    balance: MoneyTotal
    open_invoices: list[OpenInvoice]
    unapplied_credit: MoneyTotal
    overdue: MoneyTotal
    as_of: datetime
