"""What this service has posted to the ERP: one row per (kind, reference), written in
the inbox transaction of the WMS fact that caused it. Defined on the service's
metadata (process_apis/availability/db.py), so ``create_schema`` makes it."""

from __future__ import annotations

from sqlalchemy import Column, String, Table

from process_apis.availability.db import metadata
from shared.sqltypes import UtcDateTime

erp_postings = Table(
    "erp_postings",
    metadata,
    Column("kind", String(32), primary_key=True),
    Column("reference", String(64), primary_key=True),
    Column("warehouse_id", String(64), nullable=False),
    # None when the ERP answered 409 duplicate-posting (posted before, id not fetched).
    Column("posting_id", String(64), nullable=True),
    Column("posted_at", UtcDateTime, nullable=False),
)
