"""Tables of the availability process API (its own database).

- ``positions``: one row per (sku, location_id, lot) with every bucket of the
  inventory position (``lot`` is ``''`` for stock without a lot);
- ``movements``: the append-only ledger, one row per position change with one delta
  column per bucket, written in the same transaction as the change; summing it per
  key rebuilds ``positions``;
- ``allocations``: one per order (allocation_id = order_id); ``allocation_demands``:
  the requested lines; ``allocation_lines``: the firm claims per line and location.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
)

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
    Column("updated_at", DateTime(timezone=True), nullable=False),
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
    Column("created_at", DateTime(timezone=True), nullable=False),
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
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
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
