"""Tables of the reference WMS (the built-in adapter's system of record).

Physical stock is kept per (warehouse, sku, lot); ``lot`` is ``''`` for stock without a
lot, so the key stays a plain primary key on every database.

``stock`` also keeps the parts of on_hand that may not be picked or shipped
(``quality_control``, ``damaged``, ``hold``, ``picked``; ADR 0010).

``warehouses.stock_version`` counts the warehouse's stock changes: every receipt, pick,
put-away, shipment, adjustment and return raises it by one in its own transaction (a
shortage twice: its hold adjustment, then itself), and the events they emit carry it as
their ``sequence`` (subject ``warehouse:{id}``), so consumers apply them in stock order.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    inspect,
    text,
)
from sqlalchemy.engine import Connection

from shared.db import Database
from shared.sqltypes import UtcDateTime

metadata = MetaData()

# Columns of ``stock`` that are parts of on_hand: the three non-available statuses and
# what is picked for fulfillment orders and not yet shipped.
STATUSES: tuple[str, ...] = ("quality_control", "damaged", "hold")
HELD: tuple[str, ...] = (*STATUSES, "picked")

warehouses = Table(
    "warehouses",
    metadata,
    Column("warehouse_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("region", String(64), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("stock_version", BigInteger, nullable=False, default=0, server_default="0"),
)

stock = Table(
    "stock",
    metadata,
    Column("warehouse_id", String(64), ForeignKey("warehouses.warehouse_id"), primary_key=True),
    Column("sku", String(64), primary_key=True),
    Column("lot", String(64), primary_key=True),
    Column("on_hand", BigInteger, nullable=False),
    # Parts of on_hand that may not be picked or shipped (0002 + 0010).
    *(Column(name, BigInteger, nullable=False, default=0, server_default="0") for name in HELD),
    Column("updated_at", UtcDateTime(), nullable=False),
    CheckConstraint("on_hand >= 0", name="stock_on_hand_not_negative"),
    CheckConstraint(
        "quality_control >= 0 AND damaged >= 0 AND hold >= 0 AND picked >= 0",
        name="stock_statuses_not_negative",
    ),
)

receipts = Table(
    "receipts",
    metadata,
    Column("receipt_id", String(64), primary_key=True),
    Column("warehouse_id", String(64), ForeignKey("warehouses.warehouse_id"), nullable=False),
    Column("received_at", UtcDateTime(), nullable=False),
    # The ERP's inbound documents the receipt fulfils (ids only: the WMS knows no ERP).
    Column("asn_id", String(64), nullable=True),
    Column("purchase_order_id", String(64), nullable=True),
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
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    # The pick queue: a warehouse lists what is released, in id order.
    Index("ix_fulfillment_orders_status", "status", "fulfillment_order_id"),
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
    Column("picked", BigInteger, nullable=False, default=0, server_default="0"),
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
    Column("shipped_at", UtcDateTime(), nullable=False),
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


picks = Table(
    "picks",
    metadata,
    Column("pick_id", String(64), primary_key=True),
    Column(
        "fulfillment_order_id",
        String(64),
        ForeignKey("fulfillment_orders.fulfillment_order_id"),
        nullable=False,
        index=True,
    ),
    Column("picked_at", UtcDateTime(), nullable=False),
)

pick_lines = Table(
    "pick_lines",
    metadata,
    Column("pick_id", String(64), ForeignKey("picks.pick_id"), primary_key=True),
    Column("line_no", Integer, primary_key=True),
    Column("fulfillment_order_id", String(64), nullable=False, index=True),
    Column("sku", String(64), nullable=False),
    Column("lot", String(64), nullable=False),
    Column("quantity", BigInteger, nullable=False),
    # How much of this pick line has shipped (a shipment takes picked lots first).
    Column("shipped", BigInteger, nullable=False, default=0),
    # How much of it went back to free stock (a put-away takes the newest picks first).
    Column("put_away", BigInteger, nullable=False, default=0, server_default="0"),
    CheckConstraint("shipped >= 0 AND shipped <= quantity", name="pick_shipped_within_picked"),
    CheckConstraint(
        "put_away >= 0 AND shipped + put_away <= quantity", name="pick_put_away_within_picked"
    ),
)

put_aways = Table(
    "put_aways",
    metadata,
    Column("put_away_id", String(64), primary_key=True),
    Column(
        "fulfillment_order_id",
        String(64),
        ForeignKey("fulfillment_orders.fulfillment_order_id"),
        nullable=False,
        index=True,
    ),
    Column("put_away_at", UtcDateTime(), nullable=False),
)

put_away_lines = Table(
    "put_away_lines",
    metadata,
    Column("put_away_id", String(64), ForeignKey("put_aways.put_away_id"), primary_key=True),
    Column("line_no", Integer, primary_key=True),
    Column("sku", String(64), nullable=False),
    Column("lot", String(64), nullable=False),
    Column("quantity", BigInteger, nullable=False),
)

shortages = Table(
    "shortages",
    metadata,
    Column("shortage_id", String(64), primary_key=True),
    Column(
        "fulfillment_order_id",
        String(64),
        ForeignKey("fulfillment_orders.fulfillment_order_id"),
        nullable=False,
        index=True,
    ),
    Column("adjustment_id", String(64), nullable=True),
    Column("reported_at", UtcDateTime(), nullable=False),
)

shortage_lines = Table(
    "shortage_lines",
    metadata,
    Column("shortage_id", String(64), ForeignKey("shortages.shortage_id"), primary_key=True),
    Column("line_no", Integer, primary_key=True),
    Column("sku", String(64), nullable=False),
    Column("quantity", BigInteger, nullable=False),
)

# A shipment is delivered once: the primary key refuses a second delivery.
shipment_deliveries = Table(
    "shipment_deliveries",
    metadata,
    Column("shipment_id", String(64), ForeignKey("shipments.shipment_id"), primary_key=True),
    Column("delivered_at", UtcDateTime(), nullable=False),
    Column("recorded_at", UtcDateTime(), nullable=False),
)

# Carrier exceptions, numbered per shipment; the latest is the promise that holds.
shipment_delays = Table(
    "shipment_delays",
    metadata,
    Column("shipment_id", String(64), ForeignKey("shipments.shipment_id"), primary_key=True),
    Column("delay_no", Integer, primary_key=True),
    Column("reason", String(200), nullable=False),
    Column("promised_date", Date, nullable=False),
    Column("reported_at", UtcDateTime(), nullable=False),
)

adjustments = Table(
    "adjustments",
    metadata,
    Column("adjustment_id", String(64), primary_key=True),
    Column("warehouse_id", String(64), ForeignKey("warehouses.warehouse_id"), nullable=False),
    Column("reason", String(32), nullable=False),
    Column("note", String(500), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
)

adjustment_lines = Table(
    "adjustment_lines",
    metadata,
    Column("adjustment_id", String(64), ForeignKey("adjustments.adjustment_id"), primary_key=True),
    Column("line_no", Integer, primary_key=True),
    Column("sku", String(64), nullable=False),
    Column("lot", String(64), nullable=False),
    Column("status", String(32), nullable=False),
    Column("quantity_delta", BigInteger, nullable=False),
)

cycle_counts = Table(
    "cycle_counts",
    metadata,
    Column("cycle_count_id", String(64), primary_key=True),
    Column("warehouse_id", String(64), ForeignKey("warehouses.warehouse_id"), nullable=False),
    Column("sku", String(64), nullable=False),
    Column("lot", String(64), nullable=False),
    Column("expected_quantity", BigInteger, nullable=False),
    Column("counted_quantity", BigInteger, nullable=False),
    Column("adjustment_id", String(64), nullable=True),
    Column("counted_at", UtcDateTime(), nullable=False),
)

returns = Table(
    "returns",
    metadata,
    Column("return_id", String(64), primary_key=True),
    Column("order_id", String(64), nullable=False, index=True),
    Column("warehouse_id", String(64), ForeignKey("warehouses.warehouse_id"), nullable=False),
    Column("status", String(32), nullable=False),  # received, dispositioned
    Column("received_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    # The return authorization it was received against (NULL only on receipts taken
    # before ADR 0032 required one).
    Column("rma_id", String(64), nullable=True),
)

return_lines = Table(
    "return_lines",
    metadata,
    Column("return_id", String(64), ForeignKey("returns.return_id"), primary_key=True),
    Column("line_no", Integer, primary_key=True),
    Column("sku", String(64), nullable=False),
    Column("lot", String(64), nullable=False),
    Column("quantity", BigInteger, nullable=False),
    Column("restocked", BigInteger, nullable=False, default=0),
    Column("damaged", BigInteger, nullable=False, default=0),
    Column("scrapped", BigInteger, nullable=False, default=0),
    Column("returned_to_vendor", BigInteger, nullable=False, default=0),
    # Inspected and kept in quality control until a release (ADR 0032).
    Column("held", BigInteger, nullable=False, default=0, server_default="0"),
    UniqueConstraint("return_id", "sku", "lot", name="one_return_line_per_sku_lot"),
    CheckConstraint(
        "restocked + damaged + scrapped + returned_to_vendor + held <= quantity",
        name="dispositioned_within_received",
    ),
    CheckConstraint("held >= 0", name="held_not_negative"),
)

# Return authorizations (RMAs) the order service registers: the dock receives returns
# only against one of these, within each sku's authorized quantity (ADR 0032).
return_authorizations = Table(
    "return_authorizations",
    metadata,
    Column("rma_id", String(64), primary_key=True),
    Column("order_id", String(64), nullable=False, index=True),
    Column("status", String(32), nullable=False),  # authorized, cancelled
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

return_authorization_lines = Table(
    "return_authorization_lines",
    metadata,
    Column("rma_id", String(64), ForeignKey("return_authorizations.rma_id"), primary_key=True),
    Column("sku", String(64), primary_key=True),
    Column("authorized", BigInteger, nullable=False),
    Column("received", BigInteger, nullable=False, default=0, server_default="0"),
    CheckConstraint("received >= 0 AND received <= authorized", name="received_within_authorized"),
)


# Columns added after their table existed, with the DDL type an old database gets.
_COUNTER = "BIGINT NOT NULL DEFAULT 0"
_ADDED_COLUMNS: dict[str, dict[str, str]] = {
    "warehouses": {"stock_version": _COUNTER},
    "stock": dict.fromkeys(HELD, _COUNTER),
    "fulfillment_lines": {"picked": _COUNTER},
    "pick_lines": {"put_away": _COUNTER},
    "receipts": {"asn_id": "VARCHAR(64)", "purchase_order_id": "VARCHAR(64)"},
    "returns": {"rma_id": "VARCHAR(64)"},
    "return_lines": {"held": _COUNTER},
}


def _add_missing_columns(conn: Connection) -> None:
    """Databases created before a column existed get it (``create_all`` only adds
    tables): counters start at 0, references at NULL."""
    for table, wanted in _ADDED_COLUMNS.items():
        columns = {column["name"] for column in inspect(conn).get_columns(table)}
        for name, ddl in wanted.items():
            if name not in columns:
                conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {name} {ddl}"))


async def upgrade_schema(db: Database) -> None:
    """Brings a database created by an earlier version up to date (idempotent)."""
    await db.upgrade_schema(_add_missing_columns)
