"""Tables of the billing service: the invoices issued per shipment (one per shipment),
mirrored from the ERP with their tax, due date and what is paid and credited; the
payments booked through billing; the credit notes issued (from returns and price
corrections).

``create_all`` adds the tables a database lacks; ``upgrade_schema`` (at start-up, after
it) adds the columns of issue 17 to a database created before them, indexes the
payments booked before ``payment_invoices`` existed, and creates the indexes added to
tables that already existed."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Connection,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    insert,
    inspect,
    select,
    text,
    update,
)

from shared.db import Database
from shared.sqltypes import UtcDateTime

metadata = MetaData()

invoices = Table(
    "invoices",
    metadata,
    Column("invoice_id", String(64), primary_key=True),  # the ERP's invoice id
    Column("order_id", String(64), nullable=False, index=True),
    Column("shipment_id", String(64), nullable=False, unique=True),
    Column("customer_id", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("total_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("issued_at", UtcDateTime(), nullable=False),
    # Issue 17 (upgrade_schema adds them; an older invoice is all net, nothing paid).
    Column("subtotal_minor", BigInteger, nullable=False, server_default="0"),
    Column("tax_minor", BigInteger, nullable=False, server_default="0"),
    Column("paid_minor", BigInteger, nullable=False, server_default="0"),
    Column("credited_minor", BigInteger, nullable=False, server_default="0"),
    Column("outstanding_minor", BigInteger, nullable=False, server_default="0"),
    Column("due_date", String(10), nullable=True),  # ISO date
    Column("payment_terms", String(16), nullable=True),
    # The sequence of the invoice's last event (invoice.issued is 1).
    Column("version", Integer, nullable=False, server_default="1"),
)

# A customer's invoices in id order (uuid7: the order they were issued): the keyset
# pages of ``GET /billing/v1/invoices?customer_id=`` read on from their cursor.
Index("invoices_by_customer", invoices.c.customer_id, invoices.c.invoice_id)

invoice_lines = Table(
    "invoice_lines",
    metadata,
    Column("invoice_id", String(64), ForeignKey("invoices.invoice_id"), primary_key=True),
    Column("line_no", Integer, primary_key=True),
    Column("sku", String(64), nullable=False),
    Column("quantity", BigInteger, nullable=False),
    Column("unit_price_minor", BigInteger, nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("tax_minor", BigInteger, nullable=False, server_default="0"),
    Column("tax_code", String(64), nullable=True),
    Column("credited_quantity", BigInteger, nullable=False, server_default="0"),
    Column("credited_minor", BigInteger, nullable=False, server_default="0"),
    Column("credited_tax_minor", BigInteger, nullable=False, server_default="0"),
)

# Remittances booked through billing (the ERP's payment id), as the ERP applied them.
payments = Table(
    "payments",
    metadata,
    Column("payment_id", String(64), primary_key=True),
    Column("customer_id", String(64), nullable=False, index=True),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("reference", String(200), nullable=True),
    Column("received_on", String(10), nullable=False),
    Column("applied", JSON, nullable=False),  # [{"invoice_id", "amount_minor"}]
    Column("unapplied_minor", BigInteger, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
)

# Which invoices each payment was applied to (from ``payments.applied``, written with the
# payment): the index of ``GET /billing/v1/payments?invoice_id=``.
payment_invoices = Table(
    "payment_invoices",
    metadata,
    Column("payment_id", String(64), ForeignKey("payments.payment_id"), primary_key=True),
    Column("invoice_id", String(64), primary_key=True, index=True),
)

# Credit notes (the ERP's id): one per (invoice, cause) as the ERP keeps them.
credit_notes = Table(
    "credit_notes",
    metadata,
    Column("credit_note_id", String(64), primary_key=True),
    Column("invoice_id", String(64), nullable=False, index=True),
    Column("order_id", String(64), nullable=False),
    Column("customer_id", String(64), nullable=False, index=True),
    Column("reason", String(32), nullable=False),
    Column("reference", String(64), nullable=False),
    Column("note", String(200), nullable=True),
    Column("return_id", String(64), nullable=True),
    Column("rma_id", String(64), nullable=True),
    Column("currency", String(3), nullable=False),
    Column("subtotal_minor", BigInteger, nullable=False),
    Column("tax_minor", BigInteger, nullable=False),
    Column("total_minor", BigInteger, nullable=False),
    Column("lines", JSON, nullable=False),  # [{"sku", "quantity", "amount_minor", "tax_minor"}]
    Column("created_at", UtcDateTime(), nullable=False),
    UniqueConstraint("invoice_id", "reference", name="uq_credit_note_cause"),
)


# Money movements billing computes from an invoice's figures (price corrections, return
# credits) take turns per invoice across workers: a row here is the turn
# (credit_notes/claims.py); one older than its time-to-live was left by a crash.
invoice_claims = Table(
    "invoice_claims",
    metadata,
    Column("invoice_id", String(64), primary_key=True),
    Column("holder", String(64), nullable=False),
    Column("claimed_at", UtcDateTime(), nullable=False),
)


def _add_missing_columns(conn: Connection) -> None:
    """A database created before a column existed gets it; an invoice issued before
    taxes is all net with nothing paid or credited: subtotal and outstanding = total."""
    added: dict[str, set[str]] = {}
    for table in (invoices, invoice_lines):
        present = {column["name"] for column in inspect(conn).get_columns(table.name)}
        for column in table.columns:
            if column.name in present:
                continue
            kind = column.type.compile(dialect=conn.dialect)
            fallback = getattr(column.server_default, "arg", None)
            default = f" NOT NULL DEFAULT {fallback}" if fallback is not None else ""
            conn.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}{default}"))
            added.setdefault(table.name, set()).add(column.name)
    if "outstanding_minor" in added.get(invoices.name, set()):
        conn.execute(
            update(invoices).values(
                subtotal_minor=invoices.c.total_minor, outstanding_minor=invoices.c.total_minor
            )
        )


def _index_payment_invoices(conn: Connection) -> None:
    """Payments booked before ``payment_invoices`` existed get their rows (a payment
    applied to nothing has none, and is looked at again: cheap)."""
    indexed = select(payment_invoices.c.payment_id)
    rows = conn.execute(
        select(payments.c.payment_id, payments.c.applied).where(
            payments.c.payment_id.notin_(indexed)
        )
    ).all()
    values = [
        {"payment_id": row.payment_id, "invoice_id": invoice_id}
        for row in rows
        for invoice_id in sorted({str(a["invoice_id"]) for a in row.applied or []})
    ]
    if values:
        conn.execute(insert(payment_invoices), values)


def _upgrade(conn: Connection) -> None:
    _add_missing_columns(conn)
    _index_payment_invoices(conn)
    for index in invoices.indexes:  # create_all skips the indexes of tables that exist
        index.create(conn, checkfirst=True)


async def upgrade_schema(db: Database) -> None:
    """Brings a database created by an earlier version up to date (idempotent)."""
    await db.upgrade_schema(_upgrade)
