"""Tables of the order-to-ship service: orders and their lines (every quantity of the
line model, decision 0026), the status history, the release queue (what goes to the
warehouses, and the fulfillment orders it became), shipments, and the skus whose
backorders may fill."""

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
    inspect,
    text,
)

from shared.db import Database
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
    # Where it goes ({"ship_to_id"?, "name"?, "address"?, "region"}) and who buys: passed
    # to availability so strategies and ring-fences apply.
    Column("ship_to", JSON, nullable=True),
    Column("customer_group", String(64), nullable=True),
    Column("hold_id", String(64), nullable=True),  # the cart hold it converted
    # Why it is on hold and the credit figures the decision was made on.
    Column("hold_reason", String(32), nullable=True),
    Column("credit", JSON, nullable=True),
    Column("erp_synced_version", Integer, nullable=False, server_default="0"),
    # How many backorder fills it had: the next fill's Idempotency-Key, so a fill that
    # crashed before it was recorded here replays instead of allocating twice.
    Column("fill_count", Integer, nullable=False, server_default="0"),
    # When the filler asked availability to fill its backorders and has not recorded the
    # answer yet (decision 0063): no cancellation may plan its units meanwhile.
    Column("fill_asked_at", UtcDateTime(), nullable=True),
)

# The fills asked and not answered (a handful at any time): the filler's sweep.
Index(
    "orders_fill_asked",
    orders.c.fill_asked_at,
    postgresql_where=orders.c.fill_asked_at.isnot(None),
    sqlite_where=orders.c.fill_asked_at.isnot(None),
)

# The credit check's orders the ERP has not heard of yet (``repository.
# unsynced_open_value``): a few per customer at any time, however many the day holds.
Index("orders_by_customer_sync", orders.c.customer_id, orders.c.erp_synced_version)

LINE_QUANTITIES = (
    "allocated",
    "backordered",
    "released",
    "picked",
    "shipped",
    "delivered",
    "cancelled",
    "invoiced",
    "returned",
)

order_lines = Table(
    "order_lines",
    metadata,
    Column("order_id", String(64), ForeignKey("orders.order_id"), primary_key=True),
    Column("line_no", Integer, primary_key=True),
    Column("sku", String(64), nullable=False),
    Column("quantity", BigInteger, nullable=False),
    Column("unit_price_minor", BigInteger, nullable=False),
    *(Column(name, BigInteger, nullable=False, server_default="0") for name in LINE_QUANTITIES),
    UniqueConstraint("order_id", "sku", name="one_line_per_sku"),
)
# The backorder filler's question: which lines of a sku wait, oldest first.
Index("order_lines_waiting", order_lines.c.sku, order_lines.c.backordered)

order_status_history = Table(
    "order_status_history",
    metadata,
    Column("order_id", String(64), ForeignKey("orders.order_id"), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("from_status", String(24), nullable=True),
    Column("to_status", String(24), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("cause", String(64), nullable=False),
    Column("correlation_id", String(100), nullable=True),
)

# The durable release queue: one row per (order, warehouse, release) decided in the
# order's transaction, sent to the WMS by the releaser with Idempotency-Key
# ``fo:{release_id}``, so a row goes out exactly once however often it is retried.
order_releases = Table(
    "order_releases",
    metadata,
    Column("release_id", String(160), primary_key=True),
    Column("order_id", String(64), ForeignKey("orders.order_id"), nullable=False, index=True),
    Column("warehouse_id", String(64), nullable=False),
    Column("lines", JSON, nullable=False),  # [{"sku": ..., "quantity": ...}]
    Column("status", String(16), nullable=False, index=True),  # queued, sent, failed
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", String(500), nullable=True),
    Column("fulfillment_order_id", String(64), nullable=True, index=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("sent_at", UtcDateTime(), nullable=True),
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
    Column("delivered_at", UtcDateTime(), nullable=True),
    Column("promised_date", String(10), nullable=True),
    Column("delay_reason", String(200), nullable=True),
    Column("delay_reported_at", UtcDateTime(), nullable=True),
    Column("invoiced", Integer, nullable=False, server_default="0"),
)

# Invoices billing issued for a shipment this service has not recorded yet (billing
# answered the WMS's event first): applied when the shipment is (decision 0056).
early_invoices = Table(
    "early_invoices",
    metadata,
    Column("shipment_id", String(64), primary_key=True),
    Column("invoice_id", String(64), nullable=False),
    Column("received_at", UtcDateTime(), nullable=False),
)

# Skus whose available-to-promise rose since the filler last looked (coalesced).
backorder_triggers = Table(
    "backorder_triggers",
    metadata,
    Column("sku", String(64), primary_key=True),
    Column("raised_at", UtcDateTime(), nullable=False),
)


# Warehouse documents (put-aways, shortages) already applied to the lines: a fact the
# cancel flow applied from the WMS's answer is not applied again from its event.
applied_documents = Table(
    "applied_documents",
    metadata,
    Column("document_id", String(64), primary_key=True),
    Column("order_id", String(64), nullable=False),
    Column("applied_at", UtcDateTime(), nullable=False),
)

# A cancellation's plan, written before its first downstream call: repeating the
# cancellation (same key) follows the same plan, whatever the warehouse did meanwhile.
order_cancellations = Table(
    "order_cancellations",
    metadata,
    Column("cancellation_id", String(200), primary_key=True),
    Column("order_id", String(64), nullable=False, index=True),
    Column("plan", JSON, nullable=False),
    Column("done", Integer, nullable=False, server_default="0"),
    Column("created_at", UtcDateTime(), nullable=False),
)

# Orders whose state the ERP has not heard of yet (the sales-order sync's queue).
erp_sync_wanted = Table(
    "erp_sync_wanted",
    metadata,
    Column("order_id", String(64), primary_key=True),
    Column("since", UtcDateTime(), nullable=False),
)


# Return authorisations (RMAs) of shipped units (decision 0033, ``returns/``): the head,
# one line per sku with what was authorised, received and finally dispositioned, and
# the durable queue that registers each RMA's state at the WMS (sent after commit).
RMA_QUANTITIES = (
    "authorized",
    "received",
    "restocked",
    "damaged",
    "scrapped",
    "returned_to_vendor",
)

rmas = Table(
    "rmas",
    metadata,
    Column("rma_id", String(64), primary_key=True),
    Column("order_id", String(64), ForeignKey("orders.order_id"), nullable=False, index=True),
    Column("customer_id", String(64), nullable=False, index=True),
    Column("status", String(16), nullable=False),
    Column("reason", String(200), nullable=True),  # the customer's
    Column("rejection_reason", String(200), nullable=True),  # staff's
    Column("version", Integer, nullable=False),  # its events' sequence (one per status)
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("client_id", String(100), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)
# The sweeper's question: which live RMAs passed their expiry.
Index("rmas_expiring", rmas.c.status, rmas.c.expires_at)

rma_lines = Table(
    "rma_lines",
    metadata,
    Column("rma_id", String(64), ForeignKey("rmas.rma_id"), primary_key=True),
    Column("sku", String(64), primary_key=True),
    *(Column(name, BigInteger, nullable=False, server_default="0") for name in RMA_QUANTITIES),
)

rma_registrations = Table(
    "rma_registrations",
    metadata,
    Column("rma_id", String(64), ForeignKey("rmas.rma_id"), primary_key=True),
    Column("version", Integer, nullable=False),  # the RMA's version that must reach the WMS
    Column("status", String(16), nullable=False, index=True),  # queued, sending, sent, failed
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", String(500), nullable=True),
    Column("queued_at", UtcDateTime(), nullable=False),
    Column("sent_at", UtcDateTime(), nullable=True),
)


def _add_missing_columns(conn: Connection) -> None:
    """A database created before a column existed gets it (``create_all`` only adds
    tables); the new quantities start at 0, the new references empty."""
    for table in (orders, order_lines, order_shipments):
        present = {column["name"] for column in inspect(conn).get_columns(table.name)}
        for column in table.columns:
            if column.name in present:
                continue
            kind = column.type.compile(dialect=conn.dialect)
            fallback = getattr(column.server_default, "arg", None)
            default = f" NOT NULL DEFAULT {fallback}" if fallback is not None else ""
            conn.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}{default}"))


def _add_missing_indexes(conn: Connection) -> None:
    """An index added after the database was created (``create_all`` skips the indexes
    of tables that exist)."""
    for table in (orders,):
        for index in table.indexes:
            index.create(conn, checkfirst=True)


def _upgrade(conn: Connection) -> None:
    _add_missing_columns(conn)
    _add_missing_indexes(conn)


async def upgrade_schema(db: Database) -> None:
    """Brings a database created by an earlier version up to date (idempotent)."""
    await db.upgrade_schema(_upgrade)
