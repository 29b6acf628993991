"""A customer's statement, read from the ERP (the books of record): its invoices,
credit notes and payments in date order with the running balance, its open invoices,
unapplied credit and overdue amount, and the ERP's balance as of now."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import msgspec

from process_apis.billing.erp import passed_through, read_all
from process_apis.billing.invoices.schemas import is_overdue
from process_apis.billing.statements.schemas import OpenInvoice, Statement, StatementEntry
from shared.auth.principal import Principal
from shared.http import Downstream
from shared.models import Money, MoneyTotal
from shared.refusals import Refusal

KIND_ORDER = {"invoice": 0, "credit_note": 1, "payment": 2}


def _at(value: Any) -> datetime:
    return msgspec.convert(value, datetime, strict=False)


def _minor(money: dict[str, Any]) -> int:
    return int(money["amount_minor"])


class StatementService:
    def __init__(self, erp: Downstream) -> None:
        self.erp = erp

    async def statement(self, principal: Principal, customer_id: str) -> Statement:
        missing = Refusal(404, "customer-not-found", f"No customer {customer_id}.")
        if not principal.may_see_customer(customer_id):
            raise missing
        response = await self.erp.request("GET", f"/erp/v1/customers/{customer_id}/balance")
        if response.status_code == 404:
            raise missing
        if not response.is_success:
            raise passed_through(response, f"the balance of {customer_id}")
        balance = response.json()
        currency = str(balance["balance"]["currency"])
        scope = {"customer_id": customer_id}
        invoices = await read_all(self.erp, "/erp/v1/invoices", scope)
        notes = await read_all(self.erp, "/erp/v1/credit-notes", scope)
        payments = await read_all(self.erp, "/erp/v1/payments", scope)
        rows: list[tuple[datetime, int, str, str, int, int, str | None]] = []
        for inv in invoices:
            total = _minor(inv["total"])
            rows.append(
                (_at(inv["created_at"]), 0, "invoice", inv["invoice_id"], total, total, None)
            )
        for note in notes:
            total = _minor(note["total"])
            rows.append(
                (
                    _at(note["created_at"]),
                    1,
                    "credit_note",
                    note["credit_note_id"],
                    total,
                    -total,
                    note["invoice_id"],
                )
            )
        for pay in payments:
            applied = sum(_minor(a["amount"]) for a in pay["applied"])
            rows.append(
                (
                    _at(pay["created_at"]),
                    2,
                    "payment",
                    pay["payment_id"],
                    _minor(pay["amount"]),
                    -applied,
                    None,
                )
            )
        rows.sort(key=lambda r: (r[0], r[1], r[3]))
        running = 0
        entries = []
        for at, _, kind, document_id, amount, change, invoice_id in rows:
            running += change
            entries.append(
                StatementEntry(
                    kind=kind,  # type: ignore[arg-type]
                    document_id=document_id,
                    at=at,
                    amount=Money(amount, currency),
                    balance=MoneyTotal(max(0, running), currency),
                    applied=Money(-change, currency) if kind == "payment" else None,
                    invoice_id=invoice_id,
                )
            )
        open_invoices = []
        for inv in sorted(invoices, key=lambda i: (str(i.get("due_date")), i["invoice_id"])):
            outstanding = _minor(inv.get("outstanding") or inv["total"])
            if outstanding <= 0:
                continue
            due = date.fromisoformat(inv["due_date"]) if inv.get("due_date") else None
            open_invoices.append(
                OpenInvoice(
                    invoice_id=inv["invoice_id"],
                    due_date=due,
                    outstanding=Money(outstanding, currency),
                    overdue=is_overdue(outstanding, due),
                )
            )
        return Statement(
            customer_id=customer_id,
            currency=currency,
            entries=entries,
            balance=MoneyTotal(_minor(balance["balance"]), currency),
            open_invoices=open_invoices,
            unapplied_credit=MoneyTotal(_minor(balance["unapplied_credit"]), currency),
            overdue=MoneyTotal(_minor(balance["overdue"]), currency),
            as_of=_at(balance["as_of"]),
        )
