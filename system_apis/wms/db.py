"""Tables of the reference WMS (the built-in adapter's system of record).

Physical stock is kept per (warehouse, sku, lot); ``lot`` is ``''`` for stock without a
lot, so the key stays a plain primary key on every database.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)

metadata = MetaData()

warehouses = Table(
    "warehouses",
    metadata,
    Column("warehouse_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("region", String(64), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

stock = Table(
    "stock",
    metadata,
    Column("warehouse_id", String(64), ForeignKey("warehouses.warehouse_id"), primary_key=True),
    Column("sku", String(64), primary_key=True),
    Column("lot", String(64), primary_key=True),
    Column("on_hand", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("on_hand >= 0", name="stock_on_hand_not_negative"),
)

receipts = Table(
    "receipts",
    metadata,
    Column("receipt_id", String(64), primary_key=True),
    Column("warehouse_id", String(64), ForeignKey("warehouses.warehouse_id"), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
)

receipt_lines = Table(
    "receipt_lines",
    metadata,
    Column("receipt_id", String(64), ForeignKey("receipts.receipt_id"), primary_key=True),
    Column("line_no", Integer, primary_key=True),
    Column("sku", String(64), nullable=False),
    Column("lot", String(64), nullable=False),
    Column("quantity", BigInteger, nullable=False),
)

fulfillment_orders = Table(
    "fulfillment_orders",
    metadata,
    Column("fulfillment_order_id", String(64), primary_key=True),
    Column("order_id", String(64), nullable=False, index=True),
    Column("warehouse_id", String(64), ForeignKey("warehouses.warehouse_id"), nullable=False),
    Column("status", String(32), nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

fulfillment_lines = Table(
    "fulfillment_lines",
    metadata,
    Column(
        "fulfillment_order_id",
        String(64),
        ForeignKey("fulfillment_orders.fulfillment_order_id"),
        primary_key=True,
    ),
    Column("line_no", Integer, primary_key=True),
    Column("sku", String(64), nullable=False),
    Column("quantity", BigInteger, nullable=False),
    Column("shipped", BigInteger, nullable=False),
    UniqueConstraint("fulfillment_order_id", "sku", name="one_line_per_sku"),
    CheckConstraint("shipped >= 0 AND shipped <= quantity", name="shipped_within_ordered"),
)

shipments = Table(
    "shipments",
    metadata,
    Column("shipment_id", String(64), primary_key=True),
    Column(
        "fulfillment_order_id",
        String(64),
        ForeignKey("fulfillment_orders.fulfillment_order_id"),
        nullable=False,
        index=True,
    ),
    Column("order_id", String(64), nullable=False),
    Column("warehouse_id", String(64), nullable=False),
    Column("carrier", String(64), nullable=False),
    Column("tracking_number", String(100), nullable=False),
    Column("shipped_at", DateTime(timezone=True), nullable=False),
)

shipment_lines = Table(
    "shipment_lines",
    metadata,
    Column("shipment_id", String(64), ForeignKey("shipments.shipment_id"), primary_key=True),
    Column("line_no", Integer, primary_key=True),
    Column("sku", String(64), nullable=False),
    Column("lot", String(64), nullable=False),
    Column("quantity", BigInteger, nullable=False),
)
