"""Payments and customer balances of the reference ERP.

A payment is applied to the invoices it names (each at most its outstanding) or, naming
none, to the customer's open invoices oldest due date first; what is left is unapplied,
the customer's credit. It takes the customer's lock, then each invoice's in id order,
and re-reads the outstanding under them: two concurrent payments of one customer take
turns, and never pay an invoice beyond its total.

Balance = invoiced - credited - paid (= the invoices' outstanding); ``net`` subtracts
the unapplied credit."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import uuid_utils
from sqlalchemy import Select, bindparam, case, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.bulk import BulkInsert
from shared.db import Database, Tx
from shared.models import Money, MoneyTotal
from system_apis.erp import db as tables
from system_apis.erp.adapters.invoices import (
    lock_customer,
    move_money,
    outstanding_column,
    outstanding_of,
    today,
)
from system_apis.erp.port import Invalid
from system_apis.erp.schemas import (
    CustomerBalance,
    Payment,
    PaymentApplication,
    PaymentIn,
    SignedMoney,
)

INV = tables.invoices
PAY = tables.payments
APP = tables.payment_applications
CUST = tables.customers

# The statements of recording a payment, built once with bind parameters: a statement
# built per call costs SQLAlchemy more than running it (its cache key is computed from
# the whole statement every time).
_PAYMENT = select(PAY).where(PAY.c.payment_id == bindparam("payment_id"))
_APPLICATIONS_OF_MANY = (
    select(APP)
    .where(APP.c.payment_id.in_(bindparam("ids", expanding=True)))
    .order_by(APP.c.payment_id, APP.c.position)
)
_LOCK_NAMED_INVOICES = (
    select(INV)
    .where(INV.c.invoice_id.in_(bindparam("ids", expanding=True)))
    .order_by(INV.c.invoice_id)
    .with_for_update()
)
_LOCK_OPEN_INVOICES = (
    select(INV)
    .where(
        INV.c.customer_id == bindparam("customer_id"),
        INV.c.currency == bindparam("currency"),
        outstanding_column() > 0,
    )
    .order_by(INV.c.due_date, INV.c.created_at, INV.c.invoice_id)
    .with_for_update()
)
_INSERT_PAYMENT = insert(PAY)  # the row is the execution's parameters
_INSERT_APPLICATIONS = BulkInsert(APP, ["payment_id", "invoice_id", "position", "amount_minor"])


async def load_payments(
    conn: AsyncConnection, query: Select[Any], params: Mapping[str, Any] | None = None
) -> list[Payment]:
    heads = (await conn.execute(query, params)).all()
    ids = [h.payment_id for h in heads]
    applied: dict[str, list[PaymentApplication]] = {i: [] for i in ids}
    currency_of = {h.payment_id: h.currency for h in heads}
    if ids:
        rows = await conn.execute(_APPLICATIONS_OF_MANY, {"ids": ids})
        for r in rows:
            applied[r.payment_id].append(
                PaymentApplication(r.invoice_id, Money(r.amount_minor, currency_of[r.payment_id]))
            )
    return [
        Payment(
            payment_id=h.payment_id,
            customer_id=h.customer_id,
            amount=Money(h.amount_minor, h.currency),
            reference=h.reference,
            received_on=h.received_on,
            applied=applied[h.payment_id],
            unapplied=Money(h.unapplied_minor, h.currency),
            created_at=h.created_at,
        )
        for h in heads
    ]


def _check_amounts(payment: PaymentIn) -> None:
    if payment.amount.amount_minor == 0:
        raise Invalid("invalid-amount", "A payment must be of more than 0.")
    applications = payment.applications or []
    if any(a.amount.amount_minor == 0 for a in applications):
        raise Invalid("invalid-amount", "Each application must be of more than 0.")
    ids = [a.invoice_id for a in applications]
    if len(set(ids)) != len(ids):
        raise Invalid("duplicate-application", "Each invoice may be named once.")


def _check_currency(payment: PaymentIn, currency: str) -> None:
    named = {payment.amount.currency} | {a.amount.currency for a in payment.applications or []}
    if named != {currency}:
        other = sorted(named - {currency})
        raise Invalid(
            "currency-mismatch",
            f"{payment.customer_id} pays in {currency}, not {', '.join(other)}.",
        )


async def _named(conn: AsyncConnection, payment: PaymentIn, currency: str) -> list[tuple[str, int]]:
    """The applications the payment names, checked under the invoices' locks."""
    applications = payment.applications or []
    asked = sum(a.amount.amount_minor for a in applications)
    if asked > payment.amount.amount_minor:
        raise Invalid(
            "over-application",
            f"The applications add up to {asked}, more than the payment's "
            f"{payment.amount.amount_minor}.",
        )
    amounts = {a.invoice_id: a.amount.amount_minor for a in applications}
    heads = {
        h.invoice_id: h for h in await conn.execute(_LOCK_NAMED_INVOICES, {"ids": sorted(amounts)})
    }
    for a in applications:
        head = heads.get(a.invoice_id)
        if head is None or head.customer_id != payment.customer_id or head.currency != currency:
            raise Invalid(
                "unknown-invoice", f"{payment.customer_id} has no invoice {a.invoice_id}."
            )
        if a.amount.amount_minor > outstanding_of(head):
            raise Invalid(
                "over-application",
                f"Invoice {a.invoice_id} has {outstanding_of(head)} outstanding, "
                f"less than the {a.amount.amount_minor} applied.",
            )
    return [(a.invoice_id, a.amount.amount_minor) for a in applications]


async def _oldest_first(
    conn: AsyncConnection, customer_id: str, currency: str, amount: int
) -> list[tuple[str, int]]:
    """``amount`` over the customer's open invoices, oldest due date first."""
    params = {"customer_id": customer_id, "currency": currency}
    heads = (await conn.execute(_LOCK_OPEN_INVOICES, params)).all()
    applied = []
    for head in heads:
        if amount <= 0:
            break
        take = min(amount, outstanding_of(head))
        applied.append((head.invoice_id, take))
        amount -= take
    return applied


class ReferencePayments:
    db: Database

    async def create_payment(self, tx: Tx, payment: PaymentIn) -> Payment:
        conn = tx.conn
        _check_amounts(payment)
        customer = await lock_customer(conn, payment.customer_id)
        if customer is None:
            raise Invalid("unknown-customer", f"No customer {payment.customer_id}.")
        _check_currency(payment, customer.currency)
        amount = payment.amount.amount_minor
        if payment.applications:
            applied = await _named(conn, payment, customer.currency)
        else:
            applied = await _oldest_first(conn, payment.customer_id, customer.currency, amount)
        payment_id = f"PAY-{uuid_utils.uuid7()}"
        now = datetime.now(UTC)
        await conn.execute(
            _INSERT_PAYMENT,
            {
                "payment_id": payment_id,
                "customer_id": payment.customer_id,
                "amount_minor": amount,
                "unapplied_minor": amount - sum(n for _, n in applied),
                "currency": customer.currency,
                "reference": payment.reference,
                "received_on": payment.received_on or now.date(),
                "created_at": now,
            },
        )
        await _INSERT_APPLICATIONS(
            conn,
            [
                {"payment_id": payment_id, "invoice_id": i, "position": n, "amount_minor": m}
                for n, (i, m) in enumerate(applied)
            ],
        )
        for invoice_id, paid in applied:
            await move_money(conn, invoice_id, paid=paid)
        found = await load_payments(conn, _PAYMENT, {"payment_id": payment_id})
        return found[0]

    async def get_payment(self, payment_id: str) -> Payment | None:
        async with self.db.lookup() as conn:
            found = await load_payments(conn, _PAYMENT, {"payment_id": payment_id})
        return found[0] if found else None

    async def list_payments(
        self, *, customer_id: str | None, after: str | None, limit: int
    ) -> list[Payment]:
        query = select(PAY).order_by(PAY.c.payment_id).limit(limit)
        if customer_id:
            query = query.where(PAY.c.customer_id == customer_id)
        if after:
            query = query.where(PAY.c.payment_id > after)
        async with self.db.read() as conn:
            return await load_payments(conn, query)

    async def customer_balance(self, customer_id: str) -> CustomerBalance | None:
        outstanding = outstanding_column()
        open_ = outstanding > 0
        overdue = case((open_ & (INV.c.due_date < today()), outstanding), else_=0)
        invoices = select(
            func.coalesce(func.sum(INV.c.total_minor), 0).label("invoiced"),
            func.coalesce(func.sum(INV.c.credited_minor), 0).label("credited"),
            func.coalesce(func.sum(INV.c.paid_minor), 0).label("paid"),
            func.coalesce(func.sum(case((open_, 1), else_=0)), 0).label("open_invoices"),
            func.coalesce(func.sum(overdue), 0).label("overdue"),
        ).where(INV.c.customer_id == customer_id)
        async with self.db.read() as conn:
            currency = await conn.scalar(
                select(CUST.c.currency).where(CUST.c.customer_id == customer_id)
            )
            if currency is None:
                return None
            # One statement, one snapshot: the invoices and the unapplied credit agree.
            unapplied = (
                select(func.coalesce(func.sum(PAY.c.unapplied_minor), 0))
                .where(PAY.c.customer_id == customer_id, PAY.c.currency == currency)
                .scalar_subquery()
            )
            query = invoices.add_columns(unapplied.label("unapplied"))
            sums = (await conn.execute(query.where(INV.c.currency == currency))).one()
        credit = int(sums.unapplied)
        invoiced, credited, paid = int(sums.invoiced), int(sums.credited), int(sums.paid)
        balance = invoiced - credited - paid
        return CustomerBalance(
            customer_id=customer_id,
            balance=MoneyTotal(balance, currency),
            invoiced=MoneyTotal(invoiced, currency),
            credited=MoneyTotal(credited, currency),
            paid=MoneyTotal(paid, currency),
            open_invoices=int(sums.open_invoices),
            unapplied_credit=MoneyTotal(credit, currency),
            overdue=MoneyTotal(int(sums.overdue), currency),
            net=SignedMoney(balance - credit, currency),
            as_of=datetime.now(UTC),
        )
