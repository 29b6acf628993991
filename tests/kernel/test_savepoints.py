"""Per-item savepoints in plain SQL (``shared.db.savepoint``, decision 0043), on SQLite
and on a real PostgreSQL server: a failing item's writes are undone and the
transaction goes on to commit the others, nested ones unwind one level at a time, and
a database error inside one (a duplicate key) leaves the transaction usable."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db import Database, savepoint

metadata = MetaData()
items = Table("items", metadata, Column("name", String(20), primary_key=True), Column("n", Integer))


class Refused(Exception):
    pass


async def _names(db: Database) -> list[str]:
    async with db.read() as conn:
        return list(await conn.scalars(select(items.c.name).order_by(items.c.name)))


async def _refused_inside(conn: AsyncConnection) -> BaseException | None:
    """A nested savepoint whose work is refused; the exception it raised."""
    try:
        async with savepoint(conn):
            await conn.execute(insert(items).values(name="d-inner", n=2))
            raise Refused("d-inner")
    except Refused as exc:
        return exc
    return None


async def _written_then_failed(db: Database) -> BaseException | None:
    """An item written in a savepoint, then the transaction fails after it."""
    try:
        async with db.transaction() as tx:
            async with savepoint(tx.conn):
                await tx.conn.execute(insert(items).values(name="y", n=1))
            raise RuntimeError("after the item")
    except RuntimeError as exc:
        return exc
    return None


async def _batch(db: Database) -> list[str]:
    """Items a, b (refused), c (a duplicate of a), d (nested: its inner part refused)."""
    outcomes: list[str] = []
    async with db.transaction() as tx:
        conn = tx.conn
        for name, fails in (("a", None), ("b", Refused), ("a", IntegrityError), ("d", None)):
            try:
                async with savepoint(conn):
                    await conn.execute(insert(items).values(name=name, n=1))
                    if fails is Refused:
                        raise Refused(name)
                    if name == "d":
                        inner = await _refused_inside(conn)
                        assert isinstance(inner, Refused)
                        await conn.execute(insert(items).values(name="d-after", n=3))
                outcomes.append(f"{name} written")
            except (Refused, IntegrityError) as exc:
                outcomes.append(f"{name} {type(exc).__name__}")
        await conn.execute(insert(items).values(name="z", n=9))  # the transaction goes on
    return outcomes


async def _check(url: str) -> None:
    db = Database(url, metadata)
    await db.create_schema()
    try:
        outcomes = await _batch(db)
        assert outcomes == ["a written", "b Refused", "a IntegrityError", "d written"]
        assert await _names(db) == ["a", "d", "d-after", "z"]
        # A failure after the item still ends the whole transaction: nothing of it stays.
        assert isinstance(await _written_then_failed(db), RuntimeError)
        assert "y" not in await _names(db)
    finally:
        await db.dispose()


def test_savepoints_on_sqlite(tmp_path: Path) -> None:
    asyncio.run(_check(f"sqlite+aiosqlite:///{tmp_path}/savepoints.db"))


@pytest.mark.postgres
def test_savepoints_on_postgresql(postgres_url: str) -> None:
    asyncio.run(_check(postgres_url))
