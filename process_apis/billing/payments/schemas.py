"""Payments (remittances) as billing takes and answers them."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

import msgspec

from shared.models import Identifier, Money, Text


class PaymentInvoiceIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Pay ``amount`` of this invoice (more than 0, at most its outstanding)."""

    invoice_id: Identifier
    amount: Money


class PaymentIn(msgspec.Struct, forbid_unknown_fields=True):
    """A remittance of ``customer_id``: applied to ``invoices`` when named (their sum
    at most ``amount``), else to the customer's open invoices, oldest due date first.
    What is left stays unapplied as the customer's credit."""

    customer_id: Identifier
    amount: Money
    reference: Text | None = None
    received_on: date | None = None
    invoices: (
        Annotated[list[PaymentInvoiceIn], msgspec.Meta(min_length=1, max_length=500)] | None
    ) = None


class AppliedAmount(msgspec.Struct):
    invoice_id: str
    amount: Money


class Payment(msgspec.Struct):
    payment_id: str
    customer_id: str
    amount: Money
    reference: str | None
    received_on: date
    applied: list[AppliedAmount]
    unapplied: Money
    created_at: datetime
