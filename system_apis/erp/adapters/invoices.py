"""Invoices of the reference ERP: billing after the posted goods issue.

An invoice is evidence of one shipment of one booked sales order. The ERP issues it
only when the shipment's goods issue is posted and the sales order is booked (both a
wait for the caller: 409), for the order's customer, at the order's prices, in the
customer's currency, and per sku for at most what the goods issue took out of stock
(decision 0031). Tax is what billing computed per line; the ERP books it.

Money on an invoice moves only under the customer's row lock (``lock_customer``):
credit notes and payments of one customer take turns, so two of them can never
together take more than an invoice holds (on SQLite the writers take turns anyway)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import uuid_utils
from sqlalchemy import ColumnElement, Select, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.bulk import BulkInsert
from shared.db import Database, Tx, insert_if_new
from shared.models import Money
from system_apis.erp import db as tables
from system_apis.erp.adapters import open_value
from system_apis.erp.port import Conflict, DuplicateRecord, Invalid
from system_apis.erp.schemas import Invoice, InvoiceIn, InvoiceLine, InvoiceStatus

INV = tables.invoices
INVL = tables.invoice_lines
CUST = tables.customers
SO = tables.sales_orders
SOL = tables.sales_order_lines
POST = tables.inventory_postings
POSTL = tables.inventory_posting_lines

TERMS_DAYS = tables.TERMS_DAYS

# The statements of issuing an invoice and of moving money on one, built once with bind
# parameters: a statement built per call costs SQLAlchemy more than running it (its
# cache key is computed from the whole statement every time). Bind names inside an
# UPDATE's values differ from the columns' (SQLAlchemy reserves those).
_INVOICE = select(INV).where(INV.c.invoice_id == bindparam("invoice_id"))
_INVOICE_LINES_OF_MANY = (
    select(INVL)
    .where(INVL.c.invoice_id.in_(bindparam("ids", expanding=True)))
    .order_by(INVL.c.invoice_id, INVL.c.line_no)
)
_LOCK_INVOICE = _INVOICE.with_for_update()
_LOCK_CUSTOMER = (
    select(CUST.c.customer_id, CUST.c.currency, CUST.c.payment_terms)
    .where(CUST.c.customer_id == bindparam("customer_id"))
    .with_for_update()
)
_MOVE_MONEY = (
    update(INV)
    .where(
        INV.c.invoice_id == bindparam("at_invoice"),
        INV.c.credited_minor == bindparam("was_credited"),
        INV.c.paid_minor == bindparam("was_paid"),
        INV.c.total_minor >= bindparam("at_least"),
    )
    .values(
        credited_minor=bindparam("new_credited"),
        paid_minor=bindparam("new_paid"),
        status=bindparam("new_status"),
    )
)
_OWE = (
    update(CUST)
    .where(CUST.c.customer_id == bindparam("at_customer"))
    .values(outstanding_minor=CUST.c.outstanding_minor + bindparam("amount"))
)
_INVOICE_OF_SHIPMENT = select(INV.c.invoice_id).where(INV.c.shipment_id == bindparam("shipment_id"))
_GOODS_ISSUE = select(POST.c.posting_id).where(
    POST.c.kind == "goods_issue", POST.c.reference == bindparam("shipment_id")
)
_POSTING_LINES = select(POSTL).where(POSTL.c.posting_id == bindparam("posting_id"))
# Locked: two invoices of one order recompute its open value one after the other (on
# PostgreSQL each would otherwise miss the other's invoice; adapters/open_value.py).
_ORDER = select(SO).where(SO.c.order_id == bindparam("order_id")).with_for_update()
_ORDER_LINES = select(SOL).where(SOL.c.order_id == bindparam("order_id"))
_CUSTOMER = select(CUST).where(CUST.c.customer_id == bindparam("customer_id"))
_INSERT_LINES = BulkInsert(
    INVL,
    [
        "invoice_id",
        "line_no",
        "sku",
        "quantity",
        "unit_price_minor",
        "amount_minor",
        "tax_minor",
        "tax_code",
    ],
)


def outstanding_of(head: Any) -> int:
    return int(head.total_minor - head.credited_minor - head.paid_minor)


def outstanding_column() -> ColumnElement[Any]:
    return INV.c.total_minor - INV.c.credited_minor - INV.c.paid_minor


def invoice_status(total: int, credited: int, paid: int) -> InvoiceStatus:
    """Outstanding 0: ``paid`` if anything is paid, else ``credited``; otherwise
    ``partially_paid`` once anything is paid, else ``issued`` (an invoice nothing has
    touched stays ``issued``, even one of total 0)."""
    if credited == 0 and paid == 0:
        return "issued"
    if total - credited - paid <= 0:
        return "paid" if paid > 0 else "credited"
    return "partially_paid" if paid > 0 else "issued"


def today() -> date:
    return datetime.now(UTC).date()


async def lock_customer(conn: AsyncConnection, customer_id: str) -> Any:
    """The customer's row (currency, terms), locked until the transaction ends: every
    movement of money on its invoices takes this lock first."""
    return (await conn.execute(_LOCK_CUSTOMER, {"customer_id": customer_id})).first()


async def lock_invoice(conn: AsyncConnection, invoice_id: str) -> Any:
    return (await conn.execute(_LOCK_INVOICE, {"invoice_id": invoice_id})).first()


async def move_money(
    conn: AsyncConnection, invoice_id: str, *, credited: int = 0, paid: int = 0
) -> None:
    """Adds ``credited`` and ``paid`` (either may be negative) to a locked invoice and
    sets its status; a guarded update, so the outstanding never goes negative."""
    head = (await conn.execute(_INVOICE, {"invoice_id": invoice_id})).one()
    new_credited, new_paid = head.credited_minor + credited, head.paid_minor + paid
    moved = {
        "at_invoice": invoice_id,
        "was_credited": head.credited_minor,
        "was_paid": head.paid_minor,
        "at_least": new_credited + new_paid,
        "new_credited": new_credited,
        "new_paid": new_paid,
        "new_status": invoice_status(head.total_minor, new_credited, new_paid),
    }
    result = await conn.execute(_MOVE_MONEY, moved)
    if result.rowcount != 1:  # the lock makes this unreachable; the guard makes it certain
        raise Conflict("invoice-changed", f"Invoice {invoice_id} changed; try again.")
    await owe(conn, head.customer_id, -(credited + paid))


async def owe(conn: AsyncConnection, customer_id: str, amount: int) -> None:
    """Moves the customer's outstanding (``customers.outstanding_minor``) by ``amount``:
    an invoice issued adds its total, money moved on one takes what it took."""
    await conn.execute(_OWE, {"at_customer": customer_id, "amount": amount})


async def load_invoices(
    conn: AsyncConnection, query: Select[Any], params: Mapping[str, Any] | None = None
) -> list[Invoice]:
    heads = (await conn.execute(query, params)).all()
    lines: dict[str, list[Any]] = {h.invoice_id: [] for h in heads}
    if lines:
        for r in await conn.execute(_INVOICE_LINES_OF_MANY, {"ids": list(lines)}):
            lines[r.invoice_id].append(r)
    now = today()
    return [invoice_of(h, lines[h.invoice_id], now) for h in heads]


def invoice_of(head: Any, line_rows: Sequence[Any], on: date) -> Invoice:
    """The invoice of a head row and its line rows (by attribute), as of ``on``."""
    cur = head.currency
    outstanding = outstanding_of(head)
    due = head.due_date or head.created_at.date() + timedelta(
        days=TERMS_DAYS.get(head.payment_terms, 30)
    )
    return Invoice(
        invoice_id=head.invoice_id,
        order_id=head.order_id,
        shipment_id=head.shipment_id,
        customer_id=head.customer_id,
        status=head.status,
        subtotal=Money(head.subtotal_minor, cur),
        tax=Money(head.tax_minor, cur),
        total=Money(head.total_minor, cur),
        paid=Money(head.paid_minor, cur),
        credited=Money(head.credited_minor, cur),
        outstanding=Money(outstanding, cur),
        payment_terms=head.payment_terms,
        due_date=due,
        overdue=outstanding > 0 and due < on,
        lines=[
            InvoiceLine(
                line_no=r.line_no,
                sku=r.sku,
                quantity=r.quantity,
                unit_price=Money(r.unit_price_minor, cur),
                amount=Money(r.amount_minor, cur),
                tax=Money(r.tax_minor, cur),
                tax_code=r.tax_code,
                credited_quantity=r.credited_quantity,
                credited=Money(r.credited_minor, cur),
                credited_tax=Money(r.credited_tax_minor, cur),
            )
            for r in line_rows
        ],
        created_at=head.created_at,
    )


async def load_invoice(conn: AsyncConnection, invoice_id: str) -> Invoice | None:
    found = await load_invoices(conn, _INVOICE, {"invoice_id": invoice_id})
    return found[0] if found else None


# -- the guard -------------------------------------------------------------------------


async def _goods_issued(conn: AsyncConnection, shipment_id: str) -> dict[str, int] | None:
    """What the shipment's posted goods issue took out of stock per sku (None: not
    posted)."""
    posting_id = await conn.scalar(_GOODS_ISSUE, {"shipment_id": shipment_id})
    if posting_id is None:
        return None
    issued: dict[str, int] = defaultdict(int)
    for r in await conn.execute(_POSTING_LINES, {"posting_id": posting_id}):
        issued[r.sku] -= r.quantity_delta
    return issued


def _one_currency(invoice: InvoiceIn) -> str:
    currencies = {line.unit_price.currency for line in invoice.lines}
    currencies |= {line.tax.currency for line in invoice.lines if line.tax is not None}
    if len(currencies) != 1:
        raise Invalid(
            "mixed-currencies", "All invoice lines and their tax must share one currency."
        )
    return currencies.pop()


def _check_lines(
    invoice: InvoiceIn, currency: str, prices: dict[str, set[int]], issued: dict[str, int]
) -> None:
    """Every sku on the order at its price, at most what the goods issue took."""
    billed: dict[str, int] = defaultdict(int)
    for line in invoice.lines:
        if line.sku not in prices:
            raise Invalid("not-on-order", f"{line.sku} is not on sales order {invoice.order_id}.")
        price = line.unit_price
        if price.currency != currency or price.amount_minor not in prices[line.sku]:
            booked = ", ".join(str(p) for p in sorted(prices[line.sku]))
            raise Invalid(
                "price-mismatch",
                f"{line.sku} is {booked} {currency} on sales order {invoice.order_id}, "
                f"not {price.amount_minor} {price.currency}.",
            )
        billed[line.sku] += line.quantity
    for sku, quantity in sorted(billed.items()):
        if quantity > issued.get(sku, 0):
            raise Invalid(
                "over-billing",
                f"{sku}: {quantity} invoiced, but the goods issue of shipment "
                f"{invoice.shipment_id} took {issued.get(sku, 0)}.",
            )


async def _check(conn: AsyncConnection, invoice: InvoiceIn, currency: str) -> Any:
    """Refuses an invoice that is not evidence of a posted shipment of a booked order;
    answers the customer's row (its terms)."""
    issued = await _goods_issued(conn, invoice.shipment_id)
    if issued is None:
        raise Conflict(
            "shipment-not-posted",
            f"The goods issue of shipment {invoice.shipment_id} is not posted yet; "
            "a shipment is invoiced after its goods issue.",
        )
    order = (await conn.execute(_ORDER, {"order_id": invoice.order_id})).first()
    if order is None:
        raise Conflict("order-not-booked", f"Sales order {invoice.order_id} is not booked yet.")
    if order.customer_id != invoice.customer_id:
        raise Invalid(
            "customer-mismatch",
            f"Sales order {invoice.order_id} is {order.customer_id}'s, not {invoice.customer_id}'s.",
        )
    customer = (await conn.execute(_CUSTOMER, {"customer_id": invoice.customer_id})).first()
    if customer is None:  # a booked order names a known customer; kept for safety
        raise Invalid("unknown-customer", f"No customer {invoice.customer_id}.")
    if currency != customer.currency:
        raise Invalid(
            "currency-mismatch",
            f"{invoice.customer_id} is invoiced in {customer.currency}, not {currency}.",
        )
    prices: dict[str, set[int]] = defaultdict(set)
    for r in await conn.execute(_ORDER_LINES, {"order_id": invoice.order_id}):
        prices[r.sku].add(r.unit_price_minor)
    _check_lines(invoice, order.currency, prices, issued)
    return customer


class ReferenceInvoices:
    db: Database

    async def create_invoice(self, tx: Tx, invoice: InvoiceIn) -> Invoice:
        conn = tx.conn
        currency = _one_currency(invoice)
        existing = await conn.scalar(_INVOICE_OF_SHIPMENT, {"shipment_id": invoice.shipment_id})
        if existing is not None:
            raise DuplicateRecord(
                "duplicate-invoice", f"Shipment {invoice.shipment_id} is already invoiced."
            )
        customer = await _check(conn, invoice, currency)
        invoice_id = f"INV-{uuid_utils.uuid7()}"
        now = datetime.now(UTC)
        rows: list[dict[str, Any]] = [
            {
                "invoice_id": invoice_id,
                "line_no": n,
                "sku": line.sku,
                "quantity": line.quantity,
                "unit_price_minor": line.unit_price.amount_minor,
                "amount_minor": line.quantity * line.unit_price.amount_minor,
                "tax_minor": line.tax.amount_minor if line.tax is not None else 0,
                "tax_code": line.tax_code,
            }
            for n, line in enumerate(invoice.lines, start=1)
        ]
        subtotal = sum(int(r["amount_minor"]) for r in rows)
        tax = sum(int(r["tax_minor"]) for r in rows)
        if subtotal + tax > 10**15:
            raise Invalid("value-too-large", "An invoice may total at most 10^15.")
        terms = customer.payment_terms
        head = {
            "invoice_id": invoice_id,
            "order_id": invoice.order_id,
            "shipment_id": invoice.shipment_id,
            "customer_id": invoice.customer_id,
            "status": "issued",
            "subtotal_minor": subtotal,
            "tax_minor": tax,
            "total_minor": subtotal + tax,
            "credited_minor": 0,
            "paid_minor": 0,
            "currency": currency,
            "payment_terms": terms,
            "due_date": now.date() + timedelta(days=TERMS_DAYS[terms]),
            "created_at": now,
        }
        inserted = await conn.execute(
            insert_if_new(INV, sqlite=conn.dialect.name == "sqlite"), head
        )
        if inserted.rowcount == 0:  # a concurrent request invoiced the shipment first
            raise DuplicateRecord(
                "duplicate-invoice", f"Shipment {invoice.shipment_id} is already invoiced."
            )
        await _INSERT_LINES(conn, rows)
        await open_value.refresh(conn, invoice.order_id)
        await owe(conn, invoice.customer_id, subtotal + tax)
        # As written (not read back): the lines' credited figures start at 0.
        credited = {"credited_quantity": 0, "credited_minor": 0, "credited_tax_minor": 0}
        return invoice_of(
            SimpleNamespace(**head),
            [SimpleNamespace(**row, **credited) for row in rows],
            now.date(),
        )

    async def get_invoice(self, invoice_id: str) -> Invoice | None:
        async with self.db.lookup() as conn:
            return await load_invoice(conn, invoice_id)

    async def list_invoices(
        self,
        order_ids: Sequence[str],
        after: str | None,
        limit: int,
        *,
        customer_id: str | None = None,
        status: str | None = None,
        invoice_ids: Sequence[str] = (),
    ) -> list[Invoice]:
        query = select(INV).order_by(INV.c.invoice_id).limit(limit)
        if order_ids:
            query = query.where(INV.c.order_id.in_(order_ids))
        if customer_id:
            query = query.where(INV.c.customer_id == customer_id)
        if status:
            query = query.where(INV.c.status == status)
        if invoice_ids:
            query = query.where(INV.c.invoice_id.in_(list(invoice_ids)))
        if after:
            query = query.where(INV.c.invoice_id > after)
        async with self.db.read() as conn:
            return await load_invoices(conn, query)
