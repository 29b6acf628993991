"""Tables of the reference ERP (the built-in adapter's system of record)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Date,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)

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
)

customers = Table(
    "customers",
    metadata,
    Column("customer_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("credit_limit_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
)

invoices = Table(
    "invoices",
    metadata,
    Column("invoice_id", String(64), primary_key=True),
    Column("order_id", String(64), nullable=False, index=True),
    Column("shipment_id", String(64), nullable=False),
    Column("customer_id", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("total_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
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
