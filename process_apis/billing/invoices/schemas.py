"""Billing contract (v1): the shapes of docs/decisions/0002, with the taxes, due date
and settlement of decision 0034."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, Literal

import msgspec

from shared.models import Money

InvoiceStatus = Literal["issued", "partially_paid", "paid", "credited"]


class InvoiceLine(msgspec.Struct):
    """``amount`` is net (quantity * unit price); ``tax`` the line's tax; ``credited``
    and ``credited_tax`` what credit notes took back of them, for
    ``credited_quantity`` units (0 units for a price correction)."""

    sku: str
    quantity: int
    unit_price: Money
    amount: Money
    line_no: int = 0
    tax: Money | None = None
    tax_code: str | None = None
    credited_quantity: int = 0
    credited: Money | None = None
    credited_tax: Money | None = None


class Invoice(msgspec.Struct):
    """``total`` = ``subtotal`` + ``tax``; ``outstanding`` = total - credited - paid;
    ``overdue``: outstanding > 0 and ``due_date`` before today (UTC). Status: paid
    when nothing is outstanding and something was paid, credited when credit notes
    cover it all, partially_paid when part is paid, else issued."""

    invoice_id: str
    order_id: str
    shipment_id: str
    customer_id: str
    status: InvoiceStatus
    total: Money
    lines: list[InvoiceLine]
    issued_at: datetime
    subtotal: Money | None = None
    tax: Money | None = None
    paid: Money | None = None
    credited: Money | None = None
    outstanding: Money | None = None
    due_date: date | None = None
    overdue: bool = False
    payment_terms: str | None = None


def is_overdue(outstanding_minor: int, due: date | None, today: date | None = None) -> bool:
    today = today or datetime.now(UTC).date()
    return outstanding_minor > 0 and due is not None and due < today


def from_erp(body: dict[str, Any]) -> Invoice:
    """The ERP's invoice as billing mirrors it (an ERP of before issue 17 lacks the
    tax and settlement fields: all net, nothing paid)."""
    currency = body["total"]["currency"]
    zero = {"amount_minor": 0, "currency": currency}
    lines = []
    for n, line in enumerate(body["lines"], start=1):
        lines.append(
            {
                "sku": line["sku"],
                "quantity": line["quantity"],
                "unit_price": line["unit_price"],
                "amount": line["amount"],
                "line_no": line.get("line_no") or n,
                "tax": line.get("tax") or zero,
                "tax_code": line.get("tax_code"),
                "credited_quantity": line.get("credited_quantity", 0),
                "credited": line.get("credited") or zero,
                "credited_tax": line.get("credited_tax") or zero,
            }
        )
    total = body["total"]
    due = body.get("due_date")
    outstanding = body.get("outstanding") or total
    mirrored = {
        "invoice_id": body["invoice_id"],
        "order_id": body["order_id"],
        "shipment_id": body["shipment_id"],
        "customer_id": body["customer_id"],
        "status": body.get("status") or "issued",
        "total": total,
        "lines": lines,
        "issued_at": body.get("created_at") or body.get("issued_at"),
        "subtotal": body.get("subtotal") or total,
        "tax": body.get("tax") or zero,
        "paid": body.get("paid") or zero,
        "credited": body.get("credited") or zero,
        "outstanding": outstanding,
        "due_date": due,
        "overdue": False,
        "payment_terms": body.get("payment_terms"),
    }
    invoice = msgspec.convert(mirrored, Invoice, strict=False)
    invoice.overdue = is_overdue(outstanding["amount_minor"], invoice.due_date)
    return invoice
