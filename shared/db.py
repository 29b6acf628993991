"""One async SQLAlchemy engine per service, with a transaction helper that also
collects outbox events and wakes the relay once the transaction has committed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


READ_ONLY = "tally_read_only"


def create_engine(url: str) -> AsyncEngine:
    """SQLite runs in WAL mode. Write transactions take the write lock at BEGIN
    (BEGIN IMMEDIATE), so two writers queue on busy_timeout instead of failing a lock
    upgrade mid-transaction; reads begin deferred and never wait for a writer."""
    if not is_sqlite(url):
        return create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN" if conn.info.get(READ_ONLY) else "BEGIN IMMEDIATE")

    return engine


class Database:
    """The service's database: engine, schema creation and transactions."""

    def __init__(self, url: str, metadata: MetaData) -> None:
        self.url = url
        self.metadata = metadata
        self.engine = create_engine(url)
        self.sqlite = is_sqlite(url)
        self._after_commit: list[Callable[[], None]] = []
        # SQLite has one writer per file: queueing this process's writers on an asyncio
        # lock costs nothing, while queueing them on busy_timeout sleeps and retries.
        self._sqlite_writer = asyncio.Lock() if self.sqlite else None

    def on_commit(self, callback: Callable[[], None]) -> None:
        """Called after every transaction that emitted events (the outbox relay's wake-up)."""
        self._after_commit.append(callback)

    async def create_schema(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(self.metadata.create_all)

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        async with self._writer_slot(), self.engine.begin() as conn:
            tx = Tx(conn)
            yield tx
            if tx.events_written:
                from shared.events.outbox import write_outbox  # local: avoids an import cycle

                await write_outbox(conn, self.metadata, tx.events_written)
        if tx.events_written:
            for callback in self._after_commit:
                callback()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads only: on SQLite its transactions begin deferred."""
        async with self.engine.connect() as conn:
            if self.sqlite:
                conn.sync_connection.info[READ_ONLY] = True  # type: ignore[union-attr]
            try:
                yield conn
            finally:
                if self.sqlite:
                    conn.sync_connection.info.pop(READ_ONLY, None)  # type: ignore[union-attr]

    @asynccontextmanager
    async def _writer_slot(self) -> AsyncIterator[None]:
        if self._sqlite_writer is None:
            yield
            return
        async with self._sqlite_writer:
            yield

    async def dispose(self) -> None:
        await self.engine.dispose()


class Tx:
    """A connection inside a transaction, plus the events to publish if it commits."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.events_written: list[tuple[str, Any]] = []

    def emit(self, stream: str, event_: Any) -> None:
        self.events_written.append((stream, event_))


async def sleep_or_wake(wake: asyncio.Event, seconds: float) -> None:
    with suppress(TimeoutError):
        await asyncio.wait_for(wake.wait(), timeout=seconds)
    wake.clear()
