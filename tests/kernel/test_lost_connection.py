"""A database connection lost under a running service (decision 0044), on a real
PostgreSQL server whose backends are terminated as a restart would: the pool pings
nothing before use, so the first statement on a dead connection fails; that failure
is recognised as a lost connection, answered 503 ``database-unavailable`` to an HTTP
caller, kept on the bus for an event, and changes nothing; the next attempt connects
anew and goes through."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
from litestar import Litestar, get, post
from litestar.params import FromPath
from litestar.testing import TestClient
from sqlalchemy import Column, Integer, MetaData, Table, insert, select

from shared.db import Database, is_conflict, is_lost_connection
from shared.events.inbox.handlers import is_not_yet
from shared.problems import EXCEPTION_HANDLERS

pytestmark = pytest.mark.postgres

metadata = MetaData()
rows = Table("rows", metadata, Column("id", Integer, primary_key=True))


async def _terminate_backends(url: str) -> int:
    """What a database restart does to the pool's connections: every other backend of
    the database is terminated. Returns how many there were."""
    plain = url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(plain)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    finally:
        await conn.close()


async def _insert(db: Database, row_id: int) -> None:
    async with db.transaction() as tx:
        await tx.conn.execute(insert(rows).values(id=row_id))


async def _ids(db: Database) -> list[int]:
    async with db.read() as conn:
        return list(await conn.scalars(select(rows.c.id).order_by(rows.c.id)))


async def _lost_then_recovered(url: str) -> None:
    db = Database(url, metadata)
    await db.create_schema()
    try:
        await _insert(db, 1)  # the pool now holds a live connection
        assert await _terminate_backends(url) >= 1
        with pytest.raises(Exception) as lost:
            await _insert(db, 2)
        assert is_lost_connection(lost.value)
        assert is_not_yet(lost.value)  # an event's handler that met it is not poison
        assert not is_conflict(lost.value)
        assert not is_lost_connection(ValueError("a bug"))
        # The failed statement wrote nothing; the next attempt connects anew.
        await _insert(db, 2)
        assert await _ids(db) == [1, 2]
    finally:
        await db.dispose()


def test_a_lost_connection_fails_once_and_the_next_attempt_connects_anew(
    postgres_url: str,
) -> None:
    asyncio.run(_lost_then_recovered(postgres_url))


def _app(url: str) -> Litestar:
    """A service writing rows on PostgreSQL, with the platform's problem handlers (its
    database lives on the app's own event loop)."""
    db = Database(url, metadata)

    @post("/rows/{row_id:int}", status_code=201)
    async def add(row_id: FromPath[int]) -> dict[str, Any]:
        await _insert(db, row_id)
        return {"id": row_id}

    @get("/rows")
    async def listed() -> list[int]:
        return await _ids(db)

    return Litestar(
        [add, listed],
        exception_handlers=EXCEPTION_HANDLERS,
        on_startup=[db.create_schema],
        on_shutdown=[db.dispose],
    )


def test_a_request_on_a_lost_connection_is_a_503_and_its_retry_goes_through(
    postgres_url: str,
) -> None:
    with TestClient(_app(postgres_url)) as client:
        assert client.post("/rows/1").status_code == 201
        asyncio.run(_terminate_backends(postgres_url))
        refused = client.post("/rows/2")
        assert refused.status_code == 503, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.json()["type"].endswith("/problems/database-unavailable")
        assert refused.headers["retry-after"] == "1"
        assert client.get("/rows").json() == [1]  # the refused request wrote nothing
        assert client.post("/rows/2").status_code == 201
        assert client.get("/rows").json() == [1, 2]
