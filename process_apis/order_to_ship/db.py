"""Tables of the order-to-ship service: orders, their lines (with the unit price
agreed at acceptance), the fulfillment orders they were released to, and shipments."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)

from shared.sqltypes import UtcDateTime

metadata = MetaData()

orders = Table(
    "orders",
    metadata,
    Column("order_id", String(64), primary_key=True),
    Column("customer_id", String(64), nullable=False, index=True),
    Column("channel", String(32), nullable=False),
    Column("policy", String(16), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(24), nullable=False, index=True),
    Column("version", Integer, nullable=False),
    # Who placed it and with which Idempotency-Key: a resumed saga completes that record.
    Column("client_id", String(100), nullable=False),
    Column("idempotency_key", String(255), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

order_lines = Table(
    "order_lines",
    metadata,
    Column("order_id", String(64), ForeignKey("orders.order_id"), primary_key=True),
    Column("line_no", Integer, primary_key=True),
    Column("sku", String(64), nullable=False),
    Column("quantity", BigInteger, nullable=False),
    Column("unit_price_minor", BigInteger, nullable=False),
    Column("allocated", BigInteger, nullable=False, default=0),
    Column("backordered", BigInteger, nullable=False, default=0),
    Column("shipped", BigInteger, nullable=False, default=0),
    UniqueConstraint("order_id", "sku", name="one_line_per_sku"),
)

order_fulfillments = Table(
    "order_fulfillments",
    metadata,
    Column("order_id", String(64), ForeignKey("orders.order_id"), primary_key=True),
    Column("warehouse_id", String(64), primary_key=True),
    Column("fulfillment_order_id", String(64), nullable=False),
)

order_shipments = Table(
    "order_shipments",
    metadata,
    Column("shipment_id", String(64), primary_key=True),
    Column("order_id", String(64), ForeignKey("orders.order_id"), nullable=False, index=True),
    Column("fulfillment_order_id", String(64), nullable=False),
    Column("warehouse_id", String(64), nullable=False),
    Column("carrier", String(100), nullable=False),
    Column("tracking_number", String(100), nullable=False),
    Column("lines", JSON, nullable=False),  # [{"sku": ..., "quantity": ...}]
    Column("shipped_at", UtcDateTime(), nullable=False),
)
