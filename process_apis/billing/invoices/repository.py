"""SQL for invoices (SQLAlchemy Core): the mirror of the ERP's invoices."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from functools import cache
from typing import Any

from sqlalchemy import Integer, Table, bindparam, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from process_apis.billing.db import invoice_lines, invoices
from process_apis.billing.invoices.schemas import Invoice, InvoiceLine, is_overdue
from shared.bulk import BulkInsert
from shared.models import Money

# The hot statements (an invoice per shipment, a refresh per invoice a payment or a
# credit note touches, the customers' invoice lists) are built once, with bind
# parameters: a statement built per call costs SQLAlchemy more than running it (its
# cache key is computed from the whole statement every time).


def _minor(money: Money | None) -> int:
    return money.amount_minor if money is not None else 0


def _head_values(invoice: Invoice) -> dict[str, Any]:
    return {
        "status": invoice.status,
        "total_minor": invoice.total.amount_minor,
        "subtotal_minor": _minor(invoice.subtotal)
        if invoice.subtotal
        else invoice.total.amount_minor,
        "tax_minor": _minor(invoice.tax),
        "paid_minor": _minor(invoice.paid),
        "credited_minor": _minor(invoice.credited),
        "outstanding_minor": (
            _minor(invoice.outstanding) if invoice.outstanding else invoice.total.amount_minor
        ),
        "due_date": invoice.due_date.isoformat() if invoice.due_date else None,
        "payment_terms": invoice.payment_terms,
    }


def _line_values(invoice: Invoice) -> list[dict[str, Any]]:
    return [
        {
            "invoice_id": invoice.invoice_id,
            "line_no": line.line_no or n,
            "sku": line.sku,
            "quantity": line.quantity,
            "unit_price_minor": line.unit_price.amount_minor,
            "amount_minor": line.amount.amount_minor,
            "tax_minor": _minor(line.tax),
            "tax_code": line.tax_code,
            "credited_quantity": line.credited_quantity,
            "credited_minor": _minor(line.credited),
            "credited_tax_minor": _minor(line.credited_tax),
        }
        for n, line in enumerate(invoice.lines, start=1)
    ]


def insert_or_skip(conn: AsyncConnection, table: Table) -> Any:
    """An INSERT into ``table`` that does nothing on a unique conflict (a concurrent
    writer of the same row), in the database's dialect. Built once per dialect and
    table: execute it with the row as parameters (column name -> value); calling
    ``.values()`` on it would build a new statement every time."""
    return _insert_or_skip(conn.dialect.name, table)


@cache
def _insert_or_skip(dialect: str, table: Table) -> Any:
    dialect_insert: Any = sqlite_insert if dialect == "sqlite" else pg_insert
    return dialect_insert(table).on_conflict_do_nothing()


_KNOWN = select(invoices.c.invoice_id).where(
    (invoices.c.shipment_id == bindparam("shipment_id"))
    | (invoices.c.invoice_id == bindparam("invoice_id"))
)
_INSERT_LINES = BulkInsert(
    invoice_lines,
    [
        "invoice_id",
        "line_no",
        "sku",
        "quantity",
        "unit_price_minor",
        "amount_minor",
        "tax_minor",
        "tax_code",
        "credited_quantity",
        "credited_minor",
        "credited_tax_minor",
    ],
)


async def insert_invoice(conn: AsyncConnection, invoice: Invoice) -> bool:
    """False when this shipment already has its invoice (nothing is written then)."""
    params = {"shipment_id": invoice.shipment_id, "invoice_id": invoice.invoice_id}
    if await conn.scalar(_KNOWN, params) is not None:
        return False
    head = {
        "invoice_id": invoice.invoice_id,
        "order_id": invoice.order_id,
        "shipment_id": invoice.shipment_id,
        "customer_id": invoice.customer_id,
        "currency": invoice.total.currency,
        "issued_at": invoice.issued_at,
        "version": 1,
        **_head_values(invoice),
    }
    written = await conn.execute(insert_or_skip(conn, invoices), head)
    if written.rowcount != 1:
        return False  # a concurrent transaction wrote it first
    await _INSERT_LINES(conn, _line_values(invoice))
    return True


@dataclass(frozen=True)
class Moved:
    """An invoice whose status moved with a refresh: the event's sequence and status."""

    invoice: Invoice
    previous: str
    version: int


INSERTED = "inserted"  # a refresh that recorded an invoice billing had not seen


async def refresh(conn: AsyncConnection, fresh: Invoice) -> Moved | str | None:
    """Writes the ERP's current figures of an invoice over the mirror, or inserts it if
    billing never saw it (``INSERTED``). A stale read never overwrites a newer one:
    credits only grow, and paid + credited only grows (a credit note may move paid to
    unapplied). Answers the move when the status changed."""
    locked = {"invoice_id": fresh.invoice_id}
    row = (await conn.execute(_LOCKED, locked)).first()
    if row is None:
        if await insert_invoice(conn, fresh):
            return INSERTED
        row = (await conn.execute(_LOCKED, locked)).first()  # written meanwhile: refresh it
        if row is None:
            return None
    paid, credited = _minor(fresh.paid), _minor(fresh.credited)
    if credited < row.credited_minor or paid + credited < row.paid_minor + row.credited_minor:
        return None  # an older picture than the one recorded
    moved = fresh.status != row.status
    version = int(row.version) + (1 if moved else 0)
    head = {f"new_{name}": value for name, value in _head_values(fresh).items()}
    await conn.execute(
        _UPDATE_HEAD, head | {"at_invoice": fresh.invoice_id, "new_version": version}
    )
    lines = [
        {"at_invoice": fresh.invoice_id, "at_line": line["line_no"]}
        | {f"new_{name}": line[name] for name in _REFRESHED_LINE_COLUMNS}
        for line in _line_values(fresh)
    ]
    if lines:
        await conn.execute(_UPDATE_LINE, lines)  # one executemany, in line order
    return Moved(fresh, str(row.status), version) if moved else None


_LOCKED = select(invoices).where(invoices.c.invoice_id == bindparam("invoice_id")).with_for_update()
# What a refresh writes: the head's figures and version, each line's tax and credits.
# An UPDATE's bind parameters may not be named as its table's columns: ``new_{column}``.
_REFRESHED_HEAD_COLUMNS = (
    "status",
    "total_minor",
    "subtotal_minor",
    "tax_minor",
    "paid_minor",
    "credited_minor",
    "outstanding_minor",
    "due_date",
    "payment_terms",
    "version",
)
_REFRESHED_LINE_COLUMNS = (
    "tax_minor",
    "tax_code",
    "credited_quantity",
    "credited_minor",
    "credited_tax_minor",
)
_UPDATE_HEAD = (
    update(invoices)
    .where(invoices.c.invoice_id == bindparam("at_invoice"))
    .values({invoices.c[name]: bindparam(f"new_{name}") for name in _REFRESHED_HEAD_COLUMNS})
)
_UPDATE_LINE = (
    update(invoice_lines)
    .where(
        invoice_lines.c.invoice_id == bindparam("at_invoice"),
        invoice_lines.c.line_no == bindparam("at_line"),
    )
    .values({invoice_lines.c[name]: bindparam(f"new_{name}") for name in _REFRESHED_LINE_COLUMNS})
)


_INVOICED = select(invoices.c.invoice_id).where(invoices.c.shipment_id == bindparam("shipment_id"))


async def invoiced(conn: AsyncConnection, shipment_id: str) -> bool:
    found = await conn.scalar(_INVOICED, {"shipment_id": shipment_id})
    return found is not None


_INVOICED_AMONG = select(invoices.c.shipment_id).where(
    invoices.c.shipment_id.in_(bindparam("shipment_ids", expanding=True))
)


async def invoiced_among(conn: AsyncConnection, shipment_ids: list[str]) -> set[str]:
    """Those of the shipments that have their invoice."""
    if not shipment_ids:
        return set()
    return set(await conn.scalars(_INVOICED_AMONG, {"shipment_ids": sorted(set(shipment_ids))}))


_BY_ID = select(invoices).where(invoices.c.invoice_id == bindparam("invoice_id"))


async def get(conn: AsyncConnection, invoice_id: str) -> Invoice | None:
    found = await _load(conn, _BY_ID, {"invoice_id": invoice_id})
    return found[0] if found else None


async def page(
    conn: AsyncConnection,
    *,
    order_ids: Sequence[str],
    customer_id: str | None,
    after: str | None,
    limit: int,
    statuses: Sequence[str] = (),
) -> list[Invoice]:
    query = _page_query(bool(order_ids), customer_id is not None, bool(statuses), bool(after))
    params = {
        "order_ids": list(order_ids),
        "customer_id": customer_id,
        "statuses": list(statuses),
        "after": after,
        "limit": limit,
    }
    return await _load(conn, query, params)


@cache
def _page_query(by_orders: bool, by_customer: bool, by_status: bool, after: bool) -> Any:
    """``page``'s query for the filters it is given (16 shapes at most)."""
    query = (
        select(invoices).order_by(invoices.c.invoice_id).limit(bindparam("limit", type_=Integer()))
    )
    if by_orders:
        query = query.where(invoices.c.order_id.in_(bindparam("order_ids", expanding=True)))
    if by_customer:
        query = query.where(invoices.c.customer_id == bindparam("customer_id"))
    if by_status:
        query = query.where(invoices.c.status.in_(bindparam("statuses", expanding=True)))
    if after:
        query = query.where(invoices.c.invoice_id > bindparam("after"))
    return query


_LINES_OF = (
    select(invoice_lines)
    .where(invoice_lines.c.invoice_id.in_(bindparam("invoice_ids", expanding=True)))
    .order_by(invoice_lines.c.invoice_id, invoice_lines.c.line_no)
)


async def _load(conn: AsyncConnection, query: Any, params: dict[str, Any]) -> list[Invoice]:
    heads = (await conn.execute(query, params)).all()
    if not heads:
        return []
    lines: dict[str, list[InvoiceLine]] = {head.invoice_id: [] for head in heads}
    currency = {head.invoice_id: head.currency for head in heads}
    for row in await conn.execute(_LINES_OF, {"invoice_ids": list(lines)}):
        cur = currency[row.invoice_id]
        lines[row.invoice_id].append(
            InvoiceLine(
                sku=row.sku,
                quantity=row.quantity,
                unit_price=Money(row.unit_price_minor, cur),
                amount=Money(row.amount_minor, cur),
                line_no=row.line_no,
                tax=Money(row.tax_minor, cur),
                tax_code=row.tax_code,
                credited_quantity=row.credited_quantity,
                credited=Money(row.credited_minor, cur),
                credited_tax=Money(row.credited_tax_minor, cur),
            )
        )
    found = []
    for head in heads:
        cur = head.currency
        due = date.fromisoformat(head.due_date) if head.due_date else None
        found.append(
            Invoice(
                invoice_id=head.invoice_id,
                order_id=head.order_id,
                shipment_id=head.shipment_id,
                customer_id=head.customer_id,
                status=head.status,
                total=Money(head.total_minor, cur),
                lines=lines[head.invoice_id],
                issued_at=head.issued_at,
                subtotal=Money(head.subtotal_minor, cur),
                tax=Money(head.tax_minor, cur),
                paid=Money(head.paid_minor, cur),
                credited=Money(head.credited_minor, cur),
                outstanding=Money(head.outstanding_minor, cur),
                due_date=due,
                overdue=is_overdue(head.outstanding_minor, due),
                payment_terms=head.payment_terms,
            )
        )
    return found
