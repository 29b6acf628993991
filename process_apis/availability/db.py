"""Tables of the availability process API (its own database).

- ``positions``: one row per (sku, location_id, lot) with every bucket of the
  inventory position (``lot`` is ``''`` for stock without a lot);
- ``movements``: the append-only ledger, one row per position change with one delta
  column per bucket, written in the same transaction as the change; summing it per
  key rebuilds ``positions``;
- ``allocations``: one per order (allocation_id = order_id), with the customer it was
  made for (a bound caller sees its own only, ADR 0021); ``allocation_demands``:
  the requested lines; ``allocation_lines``: the firm claims per line and location;
  ``allocation_groups``: the customer group an allocation was made for (if any);
- ``holds`` and ``hold_lines``: temporary holds (the ``reserved`` bucket) per
  position, with ``expires_at`` copied onto each line so the SQL that decides ATP
  can tell a lapsed hold without a join;
- ``channel_rules``: ring-fences and caps per sku; ``channel_strategies``,
  ``locations`` and ``region_distances``: how a channel's lines pick warehouses;
- ``reconciliation_runs`` and ``reconciliation_exceptions``: at most one open
  exception per (sku, location_id), which a unique partial index enforces.

The schema is created with ``metadata.create_all``, which adds missing tables only:
``upgrade_schema`` brings a database created by an earlier version up to date.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Connection,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    inspect,
    literal_column,
    select,
    text,
    update,
)

from shared.db import Database
from shared.sqltypes import UtcDateTime

metadata = MetaData()

BUCKETS: tuple[str, ...] = (
    "on_hand",
    "allocated",
    "reserved",
    "external_committed",
    "quality_control",
    "damaged",
    "hold",
    "safety_stock",
    "incoming",
    "on_order",
    "backordered",
)

# available_to_promise = on_hand - (each of these)
ATP_DEDUCTIONS: tuple[str, ...] = (
    "allocated",
    "reserved",
    "external_committed",
    "quality_control",
    "damaged",
    "hold",
    "safety_stock",
)


def delta_column(bucket: str) -> str:
    return f"delta_{bucket}"


positions = Table(
    "positions",
    metadata,
    Column("sku", String(64), primary_key=True),
    Column("location_id", String(64), primary_key=True),
    Column("lot", String(64), primary_key=True),
    *(Column(bucket, BigInteger, nullable=False, default=0) for bucket in BUCKETS),
    Column("version", Integer, nullable=False, default=0),
    Column("updated_at", UtcDateTime(), nullable=False),
    *(CheckConstraint(f"{bucket} >= 0", name=f"{bucket}_not_negative") for bucket in BUCKETS),
)

movements = Table(
    "movements",
    metadata,
    Column("movement_id", Integer, primary_key=True, autoincrement=True),
    Column("sku", String(64), nullable=False),
    Column("location_id", String(64), nullable=False),
    Column("lot", String(64), nullable=False),
    *(Column(delta_column(bucket), BigInteger, nullable=False, default=0) for bucket in BUCKETS),
    Column("reason", String(32), nullable=False),
    Column("source", String(100), nullable=False),
    Column("reference", String(100), nullable=False),
    Column("idempotency_key", String(255), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
)
Index("movements_by_item", movements.c.sku, movements.c.movement_id)

allocations = Table(
    "allocations",
    metadata,
    Column("allocation_id", String(64), primary_key=True),
    Column("order_id", String(64), nullable=False, unique=True),
    Column("channel", String(64), nullable=False),
    Column("policy", String(16), nullable=False),
    Column("status", String(32), nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    # The customer it was made for (ADR 0021); null: made by staff for nobody in
    # particular, or before allocations carried it.
    Column("customer_id", String(64), nullable=True),
)

allocation_demands = Table(
    "allocation_demands",
    metadata,
    Column("allocation_id", String(64), ForeignKey("allocations.allocation_id"), primary_key=True),
    Column("line_no", Integer, primary_key=True),
    Column("sku", String(64), nullable=False),
    Column("quantity", BigInteger, nullable=False),
)

allocation_lines = Table(
    "allocation_lines",
    metadata,
    Column("allocation_id", String(64), ForeignKey("allocations.allocation_id"), primary_key=True),
    Column("line_no", Integer, primary_key=True),
    Column("location_id", String(64), primary_key=True),
    Column("order_id", String(64), nullable=False, index=True),
    Column("sku", String(64), nullable=False),
    Column("quantity", BigInteger, nullable=False),
    Column("shipped", BigInteger, nullable=False, default=0),
    Column("released", BigInteger, nullable=False, default=0),
    CheckConstraint(
        "shipped >= 0 AND released >= 0 AND shipped + released <= quantity",
        name="claim_within_quantity",
    ),
)

allocation_groups = Table(
    "allocation_groups",
    metadata,
    Column("allocation_id", String(64), ForeignKey("allocations.allocation_id"), primary_key=True),
    Column("customer_group", String(64), nullable=False, index=True),
)

holds = Table(
    "holds",
    metadata,
    Column("hold_id", String(64), primary_key=True),
    Column("channel", String(64), nullable=False),
    Column("customer_id", String(64), nullable=True),
    Column("customer_group", String(64), nullable=True),
    # active | released | expired | converted ("active" past expires_at counts as expired)
    Column("status", String(16), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("order_id", String(64), nullable=True),
    Column("version", Integer, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)
Index("holds_active_by_expiry", holds.c.status, holds.c.expires_at)

hold_requests = Table(
    "hold_requests",
    metadata,
    Column("hold_id", String(64), ForeignKey("holds.hold_id"), primary_key=True),
    Column("line_no", Integer, primary_key=True),
    Column("sku", String(64), nullable=False),
    Column("quantity", BigInteger, nullable=False),
)

hold_lines = Table(
    "hold_lines",
    metadata,
    Column("hold_id", String(64), ForeignKey("holds.hold_id"), primary_key=True),
    Column("line_no", Integer, primary_key=True),
    Column("location_id", String(64), primary_key=True),
    Column("lot", String(64), primary_key=True),
    Column("sku", String(64), nullable=False),
    Column("quantity", BigInteger, nullable=False),
    Column("active", Integer, nullable=False),  # 1 while the hold is active
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("channel", String(64), nullable=False),
    Column("customer_group", String(64), nullable=True),
)
Index(
    "hold_lines_by_position",
    hold_lines.c.sku,
    hold_lines.c.location_id,
    hold_lines.c.lot,
    hold_lines.c.active,
)

channel_rules = Table(
    "channel_rules",
    metadata,
    Column("rule_id", String(64), primary_key=True),
    Column("sku", String(64), nullable=False),
    Column("kind", String(8), nullable=False),  # fence | cap
    Column("channel", String(64), nullable=True),
    Column("customer_group", String(64), nullable=True),
    Column("quantity", BigInteger, nullable=True),
    Column("percent", Integer, nullable=True),
    Column("updated_at", UtcDateTime(), nullable=False),
)
Index("channel_rules_by_sku", channel_rules.c.sku)

channel_strategies = Table(
    "channel_strategies",
    metadata,
    Column("channel", String(64), primary_key=True),
    Column("ranking", String(16), nullable=False),  # most_stock | priority | nearest
    Column("split", Integer, nullable=False),
    Column("priority", Text, nullable=False),  # JSON list of location ids
    Column("eligible", Text, nullable=True),  # JSON list of location ids; null = all
    Column("updated_at", UtcDateTime(), nullable=False),
)

locations = Table(
    "locations",
    metadata,
    Column("location_id", String(64), primary_key=True),
    Column("region", String(64), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

region_distances = Table(
    "region_distances",
    metadata,
    Column("from_region", String(64), primary_key=True),
    Column("to_region", String(64), primary_key=True),
    Column("distance", Integer, nullable=False),
)

# -- inventory feeds and reconciliation (ADR 0010) ---------------------------------

# What each purchase order line last said was open (on_order applies the difference).
purchase_order_lines_seen = Table(
    "purchase_order_lines_seen",
    metadata,
    Column("purchase_order_id", String(64), primary_key=True),
    Column("sku", String(64), primary_key=True),
    Column("location_id", String(64), primary_key=True),
    Column("open_quantity", BigInteger, nullable=False),
    Column("expected_date", String(10), nullable=True),
)

# Goods in transit on ASNs, with their expected date (the ``incoming`` bucket).
inbound_lines = Table(
    "inbound_lines",
    metadata,
    Column("asn_id", String(64), primary_key=True),
    Column("sku", String(64), primary_key=True),
    Column("location_id", String(64), nullable=False),
    Column("purchase_order_id", String(64), nullable=False),
    Column("quantity", BigInteger, nullable=False),
    Column("expected_date", String(10), nullable=False),
    Column("status", String(16), nullable=False),  # in_transit, received
)
Index("inbound_by_item", inbound_lines.c.sku, inbound_lines.c.location_id)

# Picks as the WMS confirmed them; ``external`` is the part no allocation of the order
# covered (held in external_committed until it ships).
picks_seen = Table(
    "picks_seen",
    metadata,
    Column("pick_id", String(64), primary_key=True),
    Column("line_no", Integer, primary_key=True),
    Column("order_id", String(64), nullable=False, index=True),
    Column("location_id", String(64), nullable=False),
    Column("sku", String(64), nullable=False),
    Column("lot", String(64), nullable=False),
    Column("quantity", BigInteger, nullable=False),
    Column("external", BigInteger, nullable=False),
    Column("external_released", BigInteger, nullable=False, default=0),
)

reconciliation_runs = Table(
    "reconciliation_runs",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("started_at", UtcDateTime(), nullable=False),
    Column("finished_at", UtcDateTime(), nullable=False),
    Column("settlement_window_seconds", Integer, nullable=False),
    Column("threshold", BigInteger, nullable=False),
    Column("checked", Integer, nullable=False),
    Column("settling", Integer, nullable=False),
    Column("raised", Integer, nullable=False),
)

reconciliation_exceptions = Table(
    "reconciliation_exceptions",
    metadata,
    Column("exception_id", String(64), primary_key=True),
    Column("sku", String(64), nullable=False),
    Column("location_id", String(64), nullable=False),
    Column("status", String(16), nullable=False),  # open, resolved
    Column("erp_on_hand", BigInteger, nullable=True),
    Column("wms_on_hand", BigInteger, nullable=True),
    Column("projection_on_hand", BigInteger, nullable=False),
    Column("largest_difference", BigInteger, nullable=False),
    Column("evidence", Text, nullable=False),  # JSON: figures, in-flight events, movements
    Column("run_id", String(64), nullable=False),
    Column("detected_at", UtcDateTime(), nullable=False),
    Column("last_seen_at", UtcDateTime(), nullable=False),
    Column("resolved_at", UtcDateTime(), nullable=True),
    Column("resolution", String(500), nullable=True),
    Column("resolved_by", String(100), nullable=True),
)
Index(
    "reconciliation_open_by_item",
    reconciliation_exceptions.c.status,
    reconciliation_exceptions.c.sku,
    reconciliation_exceptions.c.location_id,
)
# The predicate of the index below, also the target of the upsert that records an
# exception (reconciliation/service.py). A literal, not a bound parameter: PostgreSQL
# infers the arbiter index of ON CONFLICT when it plans, and a generic plan of a
# parameter would not imply the index's predicate.
OPEN_EXCEPTION = reconciliation_exceptions.c.status == literal_column("'open'")
# One open exception per position, whatever runs at the same time: on PostgreSQL two
# runs in READ COMMITTED would otherwise both find none and both insert one.
ONE_OPEN_EXCEPTION = Index(
    "reconciliation_one_open_per_item",
    reconciliation_exceptions.c.sku,
    reconciliation_exceptions.c.location_id,
    unique=True,
    sqlite_where=OPEN_EXCEPTION,
    postgresql_where=OPEN_EXCEPTION,
)


# -- schema upgrades -------------------------------------------------------------------


def _one_open_exception_per_item(conn: Connection) -> None:
    """A database created before ``ONE_OPEN_EXCEPTION`` existed gets it. Concurrent
    runs may have left several open exceptions for one position there: the first
    detected stays open, the others are resolved as its duplicates."""
    exc = reconciliation_exceptions
    if any(i["name"] == ONE_OPEN_EXCEPTION.name for i in inspect(conn).get_indexes(exc.name)):
        return
    rows = conn.execute(
        select(exc.c.exception_id, exc.c.sku, exc.c.location_id)
        .where(exc.c.status == "open")
        .order_by(exc.c.sku, exc.c.location_id, exc.c.detected_at, exc.c.exception_id)
    ).all()
    kept: dict[tuple[str, str], str] = {}
    now = datetime.now(UTC)
    for row in rows:
        first = kept.setdefault((row.sku, row.location_id), row.exception_id)
        if first != row.exception_id:
            conn.execute(
                update(exc)
                .where(exc.c.exception_id == row.exception_id)
                .values(
                    status="resolved",
                    resolved_at=now,
                    resolution=f"Duplicate of {first}, opened by a concurrent run.",
                    resolved_by="availability schema upgrade",
                )
            )
    ONE_OPEN_EXCEPTION.create(conn)


def _allocation_customer(conn: Connection) -> None:
    """A database created before allocations carried their customer gets the column;
    the allocations already there keep none (only staff sees them)."""
    if any(c["name"] == "customer_id" for c in inspect(conn).get_columns(allocations.name)):
        return
    conn.execute(text("ALTER TABLE allocations ADD COLUMN customer_id VARCHAR(64)"))


def _upgrade(conn: Connection) -> None:
    _one_open_exception_per_item(conn)
    _allocation_customer(conn)


async def upgrade_schema(db: Database) -> None:
    """Brings a database created by an earlier version up to date (idempotent)."""
    await db.upgrade_schema(_upgrade)
