"""An orders database created before the credit check's index existed gets it, so the
check reads a customer's orders the ERP has not heard of by index (not all of the
customer's orders of the day) on a database that was upgraded, not only on a new one."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from process_apis.order_to_ship.db import metadata, upgrade_schema
from shared.db import Database

CHECK = (
    "EXPLAIN QUERY PLAN SELECT count(*) FROM orders WHERE customer_id = 'C1'"
    " AND erp_synced_version = 0"
)


async def test_an_old_orders_table_gets_the_credit_checks_index(tmp_path: Path) -> None:
    path = tmp_path / "orders.db"
    db = Database(f"sqlite+aiosqlite:///{path}", metadata)
    try:
        await db.create_schema()
    finally:
        await db.dispose()
    with sqlite3.connect(path) as conn:
        conn.execute("DROP INDEX orders_by_customer_sync")  # as an earlier version made it
        assert "orders_by_customer_sync" not in str(conn.execute(CHECK).fetchall())
    db = Database(f"sqlite+aiosqlite:///{path}", metadata)
    try:
        await db.create_schema()
        await upgrade_schema(db)
        await upgrade_schema(db)  # idempotent
    finally:
        await db.dispose()
    with sqlite3.connect(path) as conn:
        plan = str(conn.execute(CHECK).fetchall())
    assert "orders_by_customer_sync (customer_id=? AND erp_synced_version=?)" in plan
