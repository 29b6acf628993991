"""A WMS database created before ``warehouses.stock_version`` existed gets the column."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from shared.db import Database
from system_apis.wms.db import metadata, upgrade_schema


async def test_an_old_warehouses_table_gets_its_stock_version(tmp_path: Path) -> None:
    path = tmp_path / "wms.db"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE warehouses (warehouse_id VARCHAR(64) PRIMARY KEY, name VARCHAR(200)"
            " NOT NULL, region VARCHAR(64), created_at DATETIME NOT NULL)"
        )
        conn.execute("INSERT INTO warehouses VALUES ('WH1', 'East', NULL, '2026-01-01')")
    db = Database(f"sqlite+aiosqlite:///{path}", metadata)
    try:
        await db.create_schema()
        await upgrade_schema(db)
        await upgrade_schema(db)  # idempotent
    finally:
        await db.dispose()
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT warehouse_id, stock_version FROM warehouses").fetchall()
    assert rows == [("WH1", 0)]
