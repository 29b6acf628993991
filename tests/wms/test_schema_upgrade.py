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


async def test_old_receipts_and_pick_lines_get_their_new_columns(tmp_path: Path) -> None:
    path = tmp_path / "wms.db"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE receipts (receipt_id VARCHAR(64) PRIMARY KEY, warehouse_id"
            " VARCHAR(64) NOT NULL, received_at DATETIME NOT NULL)"
        )
        conn.execute("INSERT INTO receipts VALUES ('RCV-1', 'WH1', '2026-01-01')")
        conn.execute(
            "CREATE TABLE pick_lines (pick_id VARCHAR(64), line_no INTEGER, fulfillment_order_id"
            " VARCHAR(64) NOT NULL, sku VARCHAR(64) NOT NULL, lot VARCHAR(64) NOT NULL, quantity"
            " BIGINT NOT NULL, shipped BIGINT NOT NULL, PRIMARY KEY (pick_id, line_no))"
        )
        conn.execute("INSERT INTO pick_lines VALUES ('PCK-1', 1, 'FO-1', 'A', '', 3, 1)")
    db = Database(f"sqlite+aiosqlite:///{path}", metadata)
    try:
        await db.create_schema()
        await upgrade_schema(db)
        await upgrade_schema(db)  # idempotent
    finally:
        await db.dispose()
    with sqlite3.connect(path) as conn:
        receipts = conn.execute("SELECT asn_id, purchase_order_id FROM receipts").fetchall()
        picks = conn.execute("SELECT shipped, put_away FROM pick_lines").fetchall()
    assert (receipts, picks) == ([(None, None)], [(1, 0)])


async def test_old_returns_get_their_rma_and_held_columns(tmp_path: Path) -> None:
    path = tmp_path / "wms.db"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE returns (return_id VARCHAR(64) PRIMARY KEY, order_id VARCHAR(64) NOT"
            " NULL, warehouse_id VARCHAR(64) NOT NULL, status VARCHAR(32) NOT NULL,"
            " received_at DATETIME NOT NULL, updated_at DATETIME NOT NULL)"
        )
        conn.execute(
            "INSERT INTO returns VALUES ('RET-1', 'SO-1', 'WH1', 'received', '2026-01-01',"
            " '2026-01-01')"
        )
        conn.execute(
            "CREATE TABLE return_lines (return_id VARCHAR(64), line_no INTEGER, sku VARCHAR(64)"
            " NOT NULL, lot VARCHAR(64) NOT NULL, quantity BIGINT NOT NULL, restocked BIGINT NOT"
            " NULL, damaged BIGINT NOT NULL, scrapped BIGINT NOT NULL, returned_to_vendor BIGINT"
            " NOT NULL, PRIMARY KEY (return_id, line_no))"
        )
        conn.execute("INSERT INTO return_lines VALUES ('RET-1', 1, 'A', '', 3, 1, 0, 0, 0)")
    db = Database(f"sqlite+aiosqlite:///{path}", metadata)
    try:
        await db.create_schema()
        await upgrade_schema(db)
        await upgrade_schema(db)  # idempotent
    finally:
        await db.dispose()
    with sqlite3.connect(path) as conn:
        returns = conn.execute("SELECT return_id, rma_id FROM returns").fetchall()
        lines = conn.execute("SELECT restocked, held FROM return_lines").fetchall()
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert (returns, lines) == ([("RET-1", None)], [(1, 0)])
    assert {"return_authorizations", "return_authorization_lines"} <= tables
