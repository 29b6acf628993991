"""Tables of the billing service: the invoices issued per shipment (one per shipment)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey, Integer, MetaData, String, Table

from shared.sqltypes import UtcDateTime

metadata = MetaData()

invoices = Table(
    "invoices",
    metadata,
    Column("invoice_id", String(64), primary_key=True),  # the ERP's invoice id
    Column("order_id", String(64), nullable=False, index=True),
    Column("shipment_id", String(64), nullable=False, unique=True),
    Column("customer_id", String(64), nullable=False, index=True),
    Column("status", String(16), nullable=False),
    Column("total_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("issued_at", UtcDateTime(), nullable=False),
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
