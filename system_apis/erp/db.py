"""Tables of the reference ERP (the built-in adapter's system of record).

``create_all`` adds the tables a database lacks; ``upgrade_schema`` (at start-up, after
it) adds the columns and indexes that tables created by an earlier version lack."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Connection,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    func,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.schema import CreateColumn

from shared.db import Database
from shared.sqltypes import UtcDateTime

metadata = MetaData()

items = Table(
    "items",
    metadata,
    Column("sku", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("base_uom", String(16), nullable=False),
    Column("price_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    # Added by issue 17 (upgrade_schema adds it to older databases).
    Column("tax_class", String(64), nullable=False, server_default="standard"),
)

customers = Table(
    "customers",
    metadata,
    Column("customer_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("credit_limit_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    # Added by issue 16 (upgrade_schema adds them to older databases); a customer
    # written before has no updated_at until it changes (its created_at stands in).
    Column("status", String(16), nullable=False, server_default="active"),
    Column("customer_group", String(64), nullable=True),
    Column("payment_terms", String(16), nullable=False, server_default="net30"),
    Column("updated_at", UtcDateTime(), nullable=True),
    # What its invoices still ask (total - credited - paid, all in its currency), moved
    # in the transactions that issue an invoice or move money on one (decision 0046):
    # the credit exposure reads it instead of summing the open invoices on every order.
    Column("outstanding_minor", BigInteger, nullable=False, server_default="0"),
    # What its open sales orders in its currency are worth, less what is invoiced of
    # them (the sum of their ``open_value_minor``), moved with each order's open value
    # (``adapters/open_value.py``): the credit exposure reads it instead of summing the
    # customer's open orders on every order terms read (decision 0054).
    Column("open_orders_minor", BigInteger, nullable=False, server_default="0"),
)

# A customer's ship-to addresses, replaced as a whole list (``position`` keeps its order).
customer_ship_tos = Table(
    "customer_ship_tos",
    metadata,
    Column("customer_id", String(64), ForeignKey("customers.customer_id"), primary_key=True),
    Column("ship_to_id", String(64), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("name", String(200), nullable=False),
    Column("line1", String(200), nullable=False),
    Column("line2", String(200), nullable=True),
    Column("city", String(200), nullable=False),
    Column("postal_code", String(20), nullable=False),
    Column("country", String(2), nullable=False),
    Column("region", String(64), nullable=False),
)

# Customer-specific prices over the items' list prices.
customer_prices = Table(
    "customer_prices",
    metadata,
    Column("customer_id", String(64), ForeignKey("customers.customer_id"), primary_key=True),
    Column("sku", String(64), ForeignKey("items.sku"), primary_key=True),
    Column("price_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

# Sales orders as the ERP books them (the caller sends whole versions): ``value_minor``
# is sum((quantity - cancelled) * unit price), kept so credit exposure is one query.
sales_orders = Table(
    "sales_orders",
    metadata,
    Column("order_id", String(64), primary_key=True),
    Column("customer_id", String(64), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),  # open, closed, cancelled
    Column("value_minor", BigInteger, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    # Exposure reads a customer's open orders, not the closed ones piling up behind them.
    Index("sales_orders_by_customer_status", "customer_id", "status"),
    # Its value less what is invoiced while open, else 0 (adapters/open_value.py): the
    # exposure sums the orders with something open, not the shipped and invoiced ones.
    Column("open_value_minor", BigInteger, nullable=False, server_default="0"),
    Index("sales_orders_open_value", "customer_id", "open_value_minor"),
)

sales_order_lines = Table(
    "sales_order_lines",
    metadata,
    Column("order_id", String(64), ForeignKey("sales_orders.order_id"), primary_key=True),
    Column("line_no", Integer, primary_key=True),
    Column("sku", String(64), nullable=False),
    Column("quantity", BigInteger, nullable=False),
    Column("cancelled", BigInteger, nullable=False),
    Column("unit_price_minor", BigInteger, nullable=False),
)

# Invoices with their money: ``total_minor`` = ``subtotal_minor`` (net) + ``tax_minor``;
# ``credited_minor`` sums the credit notes, ``paid_minor`` the payments applied; the
# outstanding (total - credited - paid) is never negative. Issue 17 added the columns
# after ``created_at`` (upgrade_schema adds them to older databases and fills
# ``subtotal_minor`` and ``due_date`` of the invoices already there).
invoices = Table(
    "invoices",
    metadata,
    Column("invoice_id", String(64), primary_key=True),
    Column("order_id", String(64), nullable=False, index=True),
    Column("shipment_id", String(64), nullable=False),
    Column("customer_id", String(64), nullable=False),
    Column("status", String(16), nullable=False),  # issued, partially_paid, paid, credited
    Column("total_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("subtotal_minor", BigInteger, nullable=False, server_default="0"),
    Column("tax_minor", BigInteger, nullable=False, server_default="0"),
    Column("credited_minor", BigInteger, nullable=False, server_default="0"),
    Column("paid_minor", BigInteger, nullable=False, server_default="0"),
    Column("payment_terms", String(16), nullable=False, server_default="net30"),
    Column("due_date", Date, nullable=True),
    UniqueConstraint("shipment_id", name="one_invoice_per_shipment"),
)

invoice_lines = Table(
    "invoice_lines",
    metadata,
    Column("invoice_id", String(64), ForeignKey("invoices.invoice_id"), primary_key=True),
    Column("line_no", Integer, primary_key=True),
    Column("sku", String(64), nullable=False),
    Column("quantity", BigInteger, nullable=False),
    Column("unit_price_minor", BigInteger, nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    # Added by issue 17: the line's tax, and what credit notes took back of it.
    Column("tax_minor", BigInteger, nullable=False, server_default="0"),
    Column("tax_code", String(64), nullable=True),
    Column("credited_quantity", BigInteger, nullable=False, server_default="0"),
    Column("credited_minor", BigInteger, nullable=False, server_default="0"),
    Column("credited_tax_minor", BigInteger, nullable=False, server_default="0"),
)

# Credit notes: one per (invoice, cause).
credit_notes = Table(
    "credit_notes",
    metadata,
    Column("credit_note_id", String(64), primary_key=True),
    Column("invoice_id", String(64), ForeignKey("invoices.invoice_id"), nullable=False),
    Column("order_id", String(64), nullable=False),
    Column("customer_id", String(64), nullable=False),
    Column("reason", String(32), nullable=False),
    Column("reference", String(64), nullable=False),
    Column("note", String(200), nullable=True),
    Column("subtotal_minor", BigInteger, nullable=False),
    Column("tax_minor", BigInteger, nullable=False),
    Column("total_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    UniqueConstraint("invoice_id", "reference", name="one_credit_note_per_cause"),
    Index("credit_notes_by_customer", "customer_id"),
)

credit_note_lines = Table(
    "credit_note_lines",
    metadata,
    Column(
        "credit_note_id", String(64), ForeignKey("credit_notes.credit_note_id"), primary_key=True
    ),
    Column("line_no", Integer, primary_key=True),
    Column("sku", String(64), nullable=False),
    Column("quantity", BigInteger, nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("tax_minor", BigInteger, nullable=False),
)

# Payments received; ``unapplied_minor`` is what no invoice holds (the customer's credit).
payments = Table(
    "payments",
    metadata,
    Column("payment_id", String(64), primary_key=True),
    Column("customer_id", String(64), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("unapplied_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("reference", String(200), nullable=True),
    Column("received_on", Date, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Index("payments_by_customer", "customer_id"),
    # Exposure reads a customer's payments with credit left, not the spent ones.
    Index("payments_by_customer_unapplied", "customer_id", "unapplied_minor"),
    CheckConstraint(
        "unapplied_minor >= 0 AND unapplied_minor <= amount_minor", name="payment_within_amount"
    ),
)

# What each payment pays of each invoice (``position`` keeps the order it was applied in).
payment_applications = Table(
    "payment_applications",
    metadata,
    Column("payment_id", String(64), ForeignKey("payments.payment_id"), primary_key=True),
    Column("invoice_id", String(64), ForeignKey("invoices.invoice_id"), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Index("payment_applications_by_invoice", "invoice_id"),
    CheckConstraint("amount_minor >= 0", name="application_not_negative"),
)

purchase_orders = Table(
    "purchase_orders",
    metadata,
    Column("purchase_order_id", String(64), primary_key=True),
    Column("supplier_id", String(64), nullable=False),
    Column("status", String(16), nullable=False),  # open, closed, cancelled
    Column("version", Integer, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

purchase_order_lines = Table(
    "purchase_order_lines",
    metadata,
    Column(
        "purchase_order_id",
        String(64),
        ForeignKey("purchase_orders.purchase_order_id"),
        primary_key=True,
    ),
    Column("line_no", Integer, primary_key=True),
    Column("sku", String(64), nullable=False),
    Column("warehouse_id", String(64), nullable=False),
    Column("ordered", BigInteger, nullable=False),
    Column("in_transit", BigInteger, nullable=False, default=0),
    Column("received", BigInteger, nullable=False, default=0),
    Column("expected_date", Date, nullable=True),
    UniqueConstraint("purchase_order_id", "sku", "warehouse_id", name="one_po_line_per_sku"),
    CheckConstraint(
        "in_transit >= 0 AND received >= 0 AND in_transit + received <= ordered",
        name="po_line_within_ordered",
    ),
)

asns = Table(
    "asns",
    metadata,
    Column("asn_id", String(64), primary_key=True),
    Column("purchase_order_id", String(64), nullable=False, index=True),
    Column("warehouse_id", String(64), nullable=False),
    Column("status", String(16), nullable=False),  # in_transit, received
    Column("expected_date", Date, nullable=False),
    Column("receipt_id", String(64), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

asn_lines = Table(
    "asn_lines",
    metadata,
    Column("asn_id", String(64), ForeignKey("asns.asn_id"), primary_key=True),
    Column("line_no", Integer, primary_key=True),
    Column("sku", String(64), nullable=False),
    Column("quantity", BigInteger, nullable=False),
)

# The ERP's financial inventory: what it has booked, from the postings it was given.
financial_stock = Table(
    "financial_stock",
    metadata,
    Column("sku", String(64), primary_key=True),
    Column("warehouse_id", String(64), primary_key=True),
    Column("on_hand", BigInteger, nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

inventory_postings = Table(
    "inventory_postings",
    metadata,
    Column("posting_id", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("reference", String(64), nullable=False),
    Column("warehouse_id", String(64), nullable=False),
    Column("posted_at", UtcDateTime(), nullable=False),
    # The sales order a goods issue ships, when the poster named it (null before).
    Column("order_id", String(64)),
    # One posting per warehouse document and kind: a second one is refused.
    UniqueConstraint("kind", "reference", name="one_posting_per_document"),
)

inventory_posting_lines = Table(
    "inventory_posting_lines",
    metadata,
    Column("posting_id", String(64), ForeignKey("inventory_postings.posting_id"), primary_key=True),
    Column("line_no", Integer, primary_key=True),
    Column("sku", String(64), nullable=False),
    Column("quantity_delta", BigInteger, nullable=False),
)

# A customer's invoices are listed and summed (its balance) by customer.
INVOICES_BY_CUSTOMER = Index("invoices_by_customer", invoices.c.customer_id)


# -- schema upgrades -------------------------------------------------------------------


def _missing_columns(conn: Connection, table: Table) -> list[str]:
    """Adds the columns of ``table`` a database created by an earlier version lacks
    (each new column is nullable or has a server default) and names them."""
    present = {c["name"] for c in inspect(conn).get_columns(table.name)}
    added = []
    for column in table.columns:
        if column.name not in present:
            ddl = CreateColumn(column).compile(dialect=conn.dialect)
            conn.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {ddl}"))
            added.append(column.name)
    return added


def _customer_master_columns(conn: Connection) -> list[str]:
    """A database created before the customer master had status, group, terms and
    updated_at gets the columns (with their defaults: active, net30); one from before
    decision 0046, ``outstanding_minor`` (filled by ``_fill_outstanding``)."""
    return _missing_columns(conn, customers)


TERMS_DAYS = {"prepaid": 0, "net15": 15, "net30": 30, "net60": 60}


def _financial_document_columns(conn: Connection) -> None:
    """Issue 17: items get their tax class (standard), invoices and their lines their
    money columns. An invoice issued before had no tax: its subtotal is its total, its
    terms net30 (the default then), due 30 days after issue."""
    _missing_columns(conn, items)
    _missing_columns(conn, invoice_lines)
    added = _missing_columns(conn, invoices)
    if "subtotal_minor" in added:
        conn.execute(update(invoices).values(subtotal_minor=invoices.c.total_minor))
    if "due_date" not in added:
        return
    undated = conn.execute(
        select(invoices.c.invoice_id, invoices.c.created_at, invoices.c.payment_terms).where(
            invoices.c.due_date.is_(None)
        )
    ).all()
    for row in undated:
        due = row.created_at.date() + timedelta(days=TERMS_DAYS.get(row.payment_terms, 30))
        conn.execute(
            update(invoices).where(invoices.c.invoice_id == row.invoice_id).values(due_date=due)
        )


def _missing_indexes(conn: Connection) -> None:
    """Indexes added after the database was created (``create_all`` skips the indexes
    of tables that exist)."""
    for index in (
        INVOICES_BY_CUSTOMER,
        *(i for i in payments.indexes if i.name == "payments_by_customer_unapplied"),
        *(i for i in sales_orders.indexes if i.name == "sales_orders_open_value"),
    ):
        assert index.table is not None
        if not any(i["name"] == index.name for i in inspect(conn).get_indexes(index.table.name)):
            index.create(conn)


def _fill_outstanding(conn: Connection) -> None:
    """Each customer's outstanding, from its invoices (a database from before the
    column)."""
    owed = (
        select(
            func.coalesce(
                func.sum(
                    invoices.c.total_minor - invoices.c.credited_minor - invoices.c.paid_minor
                ),
                0,
            )
        )
        .where(
            invoices.c.customer_id == customers.c.customer_id,
            invoices.c.currency == customers.c.currency,
        )
        .scalar_subquery()
    )
    conn.execute(update(customers).values(outstanding_minor=owed))


def _sales_orders_open_value(conn: Connection) -> None:
    if "open_value_minor" in _missing_columns(conn, sales_orders):
        # The figure's definition lives with the adapters that keep it.
        from system_apis.erp.adapters.open_value import REFRESH_ALL

        conn.execute(REFRESH_ALL)


def _fill_open_orders(conn: Connection) -> None:
    """Each customer's open orders' value, from its orders' open values (a database
    from before the column)."""
    from system_apis.erp.adapters.open_value import FILL_CUSTOMERS

    conn.execute(FILL_CUSTOMERS)


def _upgrade(conn: Connection) -> None:
    added = _customer_master_columns(conn)
    _financial_document_columns(conn)
    _missing_columns(conn, inventory_postings)  # order_id (decision 0045)
    # After the invoices' money columns they read (decision 0046):
    _sales_orders_open_value(conn)
    if "outstanding_minor" in added:
        _fill_outstanding(conn)
    if "open_orders_minor" in added:  # after the orders' open values it sums
        _fill_open_orders(conn)
    _missing_indexes(conn)  # last: some index columns are added above


async def upgrade_schema(db: Database) -> None:
    """Brings a database created by an earlier version up to date (idempotent)."""
    await db.upgrade_schema(_upgrade)
