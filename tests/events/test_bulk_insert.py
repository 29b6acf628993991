"""BulkInsert (shared/bulk.py), the hot paths' multi-row INSERT, stores exactly what
SQLAlchemy's own ``insert(table)`` would, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    insert,
    select,
)

from shared.bulk import BulkInsert
from shared.db import Database

metadata = MetaData()
things = Table(
    "things",
    metadata,
    Column("thing_id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(40), nullable=False),
    Column("count", BigInteger, nullable=False, default=7),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("body", LargeBinary, nullable=True),
    Column("extra", JSON, nullable=True),
)
WRITE = BulkInsert(things, ["name", "count", "at", "body", "extra"])
AT = datetime(2026, 11, 23, 10, 30, 15, 123456, tzinfo=UTC)


def rows(prefix: str) -> list[dict[str, object]]:
    return [
        {"name": f"{prefix}-a", "count": 3, "at": AT, "body": b"\x00\x01", "extra": {"k": [1]}},
        {"name": f"{prefix}-b", "at": AT, "body": None, "extra": None},  # count: its default
    ]


async def stored(url: str) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """The rows BulkInsert wrote next to the ones SQLAlchemy's insert() wrote."""
    db = Database(url, metadata)
    await db.create_schema()
    try:
        async with db.transaction() as tx:
            await WRITE(tx.conn, rows("bulk"))
            await WRITE(tx.conn, [])  # nothing to write is no statement
            for row in rows("orm"):  # one by one: executemany wants the same keys in each
                await tx.conn.execute(insert(things).values(row))
        async with db.read() as conn:
            found = (await conn.execute(select(things).order_by(things.c.thing_id))).all()
    finally:
        await db.dispose()

    def plain(row: Any) -> tuple[object, ...]:
        return (row.name.split("-")[1], row.count, row.at.replace(tzinfo=UTC), row.body, row.extra)

    return [plain(r) for r in found[:2]], [plain(r) for r in found[2:]]


def check(url: str) -> None:
    bulk, orm = asyncio.run(stored(url))
    assert bulk == orm
    assert bulk[0] == ("a", 3, AT, b"\x00\x01", {"k": [1]})
    assert bulk[1] == ("b", 7, AT, None, None)


def test_bulk_insert_stores_what_insert_would_on_sqlite(tmp_path: Path) -> None:
    check(f"sqlite+aiosqlite:///{tmp_path}/bulk.db")


def test_bulk_insert_stores_what_insert_would_on_postgresql(postgres_url: str) -> None:
    check(postgres_url)


def test_a_row_missing_a_column_without_default_is_refused(tmp_path: Path) -> None:
    async def run() -> None:
        db = Database(f"sqlite+aiosqlite:///{tmp_path}/bulk.db", metadata)
        await db.create_schema()
        try:
            with pytest.raises(KeyError, match=r"things\.at"):
                async with db.transaction() as tx:
                    await WRITE(tx.conn, [{"name": "x", "body": None, "extra": None}])
        finally:
            await db.dispose()

    asyncio.run(run())


def test_unknown_columns_are_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="no columns"):
        BulkInsert(things, ["name", "colour"])
