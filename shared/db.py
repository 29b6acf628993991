"""One async SQLAlchemy engine per service, with a transaction helper that also
collects outbox events and wakes the relay once the transaction has committed."""

from __future__ import annotations

import asyncio
import collections
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
from sqlalchemy import Connection, MetaData, event, text
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, PoolResetState
from sqlalchemy.util import EMPTY_DICT, await_

from shared.leader import FileLock

T = TypeVar("T")


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


# -- SQLite: one trip to aiosqlite's thread per statement -----------------------------
# aiosqlite runs each call on the connection's own thread; SQLAlchemy's adapter makes
# three or four such trips per statement (open a cursor, execute, fetch, close), each a
# thread hand-off and an event-loop wake-up. These classes run the whole statement in
# one trip and hand back the rows, the description, rowcount and lastrowid: a producing
# transaction (BEGIN, two INSERTs, COMMIT) costs four trips instead of eleven.


def _statement_on_driver_thread(
    conn: sqlite3.Connection, sql: str, params: Any, many: bool
) -> tuple[Any, int, int | None, list[Any]]:
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(sql, params)
        elif params is None:
            cursor.execute(sql)
        else:
            cursor.execute(sql, params)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, cursor.rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()


async def _done(value: T) -> T:
    return value


class _OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    __slots__ = ("_arraysize", "_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: Any) -> None:  # no driver cursor: no trip
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._rows = collections.deque()
        self._soft_closed_memoized = EMPTY_DICT
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None
        self._arraysize = 1

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> Any:
        return self._lastrowid

    @property
    def arraysize(self) -> int:
        return self._arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._arraysize = value

    def _trip(self, sql: Any, params: Any, many: bool) -> None:
        driver: Any = self._connection
        try:
            if getattr(self._adapt_connection, "inline", False) and driver._conn.in_transaction:
                # Still through await_: SQLAlchemy's async layer requires one await per
                # statement; awaiting a finished coroutine does not touch the loop.
                result = await_(_done(_statement_on_driver_thread(driver._conn, sql, params, many)))
            else:
                result = await_(
                    driver._execute(_statement_on_driver_thread, driver._conn, sql, params, many)
                )
        except Exception as error:
            self._adapt_connection._handle_exception(error)
        self._description, self._rowcount, self._lastrowid, rows = result
        self._rows = collections.deque(rows)

    def execute(self, operation: Any, parameters: Any = None) -> None:
        self._trip(operation, parameters, False)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> None:
        self._trip(operation, seq_of_parameters, True)

    async def _async_soft_close(self) -> None:
        return None  # nothing open on the driver's side

    def close(self) -> None:
        self._rows.clear()


class _OneTripConnection(AsyncAdapt_aiosqlite_connection):
    """``inline``: statements inside a transaction run on the event loop's thread;
    ``reading``: so do BEGIN, COMMIT and ROLLBACK of a read transaction (a deferred
    BEGIN takes no lock, and ending a transaction that wrote nothing writes nothing)."""

    __slots__ = ("inline", "reading")
    _cursor_cls = _OneTripCursor

    def __init__(self, dbapi: Any, connection: Any) -> None:
        super().__init__(dbapi, connection)
        self.inline = False
        self.reading = False

    def commit(self) -> None:
        if not (self.inline and self.reading):
            super().commit()
        elif self._connection._connection:
            self._connection._conn.commit()

    def rollback(self) -> None:
        if not (self.inline and self.reading):
            super().rollback()
        elif self._connection._connection:
            self._connection._conn.rollback()


class _OneTripDbapi(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> AsyncAdapt_aiosqlite_connection:
        connection = self.aiosqlite.connect(*arg, **kw)
        connection._thread.daemon = True  # as SQLAlchemy's own adapter does
        return _OneTripConnection(self, await_(connection))


READ_ONLY = "tally_read_only"
BUSY_TIMEOUT_MS = 30_000


def _begin_waiting(conn: sqlite3.Connection, sql: str) -> None:
    """BEGIN on a connection that never waits for a lock (the kept writer), waiting."""
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    try:
        conn.execute(sql)
    finally:
        conn.execute("PRAGMA busy_timeout=0")


def create_engine(url: str) -> AsyncEngine:
    """SQLite runs in WAL mode. Write transactions take the write lock at BEGIN
    (BEGIN IMMEDIATE), so two writers queue on busy_timeout instead of failing a lock
    upgrade mid-transaction; reads begin deferred and never wait for a writer.

    aiosqlite runs every call on the connection's own thread, and each round trip
    costs: statements take one trip each (``_OneTripCursor``), BEGIN goes straight to
    the driver, and a connection returned to the pool is rolled back only when a
    transaction is still open (a committed one needs no rollback trip)."""
    if not is_sqlite(url):
        return create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {}
    if make_url(url).get_driver_name() == "aiosqlite":
        options["module"] = _OneTripDbapi(aiosqlite, sqlite3)
    engine = create_async_engine(
        url,
        # check_same_thread off: the writer's statements run on the loop's thread (below).
        connect_args={"timeout": 30, "check_same_thread": False},
        pool_reset_on_return=None,
        **options,
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        driver = conn.connection.driver_connection  # the aiosqlite connection
        sql = "BEGIN" if conn.info.get(READ_ONLY) else "BEGIN IMMEDIATE"
        if getattr(conn.connection.dbapi_connection, "inline", False):
            # The kept writer, holding this host's writer turn: the lock is free unless
            # a writer outside the turn holds it (a schema upgrade). Tried on the loop's
            # thread without waiting; if taken, waited for on the driver's thread.
            try:
                driver._conn.execute(sql)
                return
            except sqlite3.OperationalError as exc:
                if getattr(exc, "sqlite_errorcode", 0) & 0xFF != sqlite3.SQLITE_BUSY:
                    raise
            await_(driver._execute(_begin_waiting, driver._conn, sql))
            return
        await_(driver._execute(driver._conn.execute, sql))

    @event.listens_for(engine.sync_engine, "reset")
    def _on_reset(
        dbapi_connection: Any, record: ConnectionPoolEntry, state: PoolResetState
    ) -> None:
        if not state.asyncio_safe or state.terminate_only:
            return  # what SQLAlchemy's own rollback-on-return would skip too
        driver = record.driver_connection
        if driver is not None and driver.in_transaction:
            dbapi_connection.rollback()

    return engine


class Database:
    """The service's database: engine, schema creation and transactions."""

    def __init__(self, url: str, metadata: MetaData) -> None:
        self.url = url
        self.metadata = metadata
        self.engine = create_engine(url)
        self.sqlite = is_sqlite(url)
        self._after_commit: list[Callable[[list[tuple[str, Any]]], None]] = []
        # SQLite has one writer per file: queueing this process's writers on an asyncio
        # lock costs nothing, while queueing them on busy_timeout sleeps and retries.
        # The lock's holder writes on one connection kept open for writing (no pool
        # check-out, check-in and reset per transaction).
        self._sqlite_writer = asyncio.Lock() if self.sqlite else None
        self._writer_conn: AsyncConnection | None = None
        # ... and across the processes writing the same file (the workers of a service,
        # a CLI): a file lock, handed over the moment it is released, where SQLite's
        # busy_timeout would poll with sleeps of up to 100 ms.
        database = make_url(url).database if self.sqlite else None
        self._sqlite_turn = (
            FileLock(Path(f"{database}-writer.lock"))
            if database and database != ":memory:"
            else None
        )

    def on_commit(self, callback: Callable[[list[tuple[str, Any]]], None]) -> None:
        """Called with the (stream, event) pairs of every transaction that emitted events,
        once it has committed (the outbox relay's hand-off)."""
        self._after_commit.append(callback)

    async def create_schema(self) -> None:
        await self.upgrade_schema(self.metadata.create_all)

    async def upgrade_schema(self, step: Callable[[Connection], object]) -> None:
        """Runs ``step`` (synchronous, on a connection) in one transaction. Workers
        starting together take turns: on SQLite through BEGIN IMMEDIATE, on PostgreSQL
        through a transaction-scoped advisory lock."""
        async with self.engine.begin() as conn:
            if not self.sqlite:
                await conn.execute(text("SELECT pg_advisory_xact_lock(7419)"))
            await conn.run_sync(step)

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        async with self._writing() as conn, conn.begin():
            tx = Tx(conn)
            yield tx
            if tx.events_written:
                from shared.events.outbox import write_outbox  # local: avoids an import cycle

                await write_outbox(conn, self.metadata, tx.events_written)
        if tx.events_written:
            for callback in self._after_commit:
                callback(tx.events_written)

    @asynccontextmanager
    async def _writing(self) -> AsyncIterator[AsyncConnection]:
        """A connection to write on: SQLite's kept writer connection (this process's
        writers queue for it), else one from the pool."""
        if self._sqlite_writer is None:
            async with self.engine.connect() as pooled:
                yield pooled
            return
        async with self._sqlite_writer:
            conn = await self._kept_writer()
            if self._sqlite_turn is None:
                yield conn
                return
            await self._sqlite_turn.acquire()
            try:
                yield conn
            finally:
                self._sqlite_turn.release()

    async def _kept_writer(self) -> AsyncConnection:
        kept = self._writer_conn
        if kept is not None and not _clean(kept):
            # A transaction a cancelled caller left open, or a broken connection.
            self._writer_conn = None
            await _discard(kept)
        if self._writer_conn is None:
            self._writer_conn = await self.engine.connect()
            _run_inline(self._writer_conn)
        return self._writer_conn

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[AsyncConnection]:
        """A read transaction to plan a write on, outside the writer's turn (the write
        then re-checks what the plan relied on). On SQLite it runs on this process's
        kept writer connection, on the loop's thread like the writer's statements: a
        WAL reader waits for no writer."""
        if self._sqlite_writer is None:
            async with self.engine.connect() as pooled, pooled.begin():
                yield pooled
            return
        async with self._sqlite_writer:
            conn = await self._kept_writer()
            sync = conn.sync_connection
            assert sync is not None
            adapted = sync.connection.dbapi_connection
            sync.info[READ_ONLY] = True
            if isinstance(adapted, _OneTripConnection):
                adapted.reading = True
            try:
                async with conn.begin():
                    yield conn
            finally:
                sync.info.pop(READ_ONLY, None)
                if isinstance(adapted, _OneTripConnection):
                    adapted.reading = False

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

    async def dispose(self) -> None:
        if self._sqlite_turn is not None:
            self._sqlite_turn.close()
        if self._writer_conn is not None:
            conn, self._writer_conn = self._writer_conn, None
            await _discard(conn)
        await self.engine.dispose()


def _run_inline(conn: AsyncConnection) -> None:
    """The writer's statements, once its BEGIN IMMEDIATE holds the write lock, run on
    the event loop's thread: they wait for no lock (WAL readers never block a writer)
    and take microseconds, less than the hand-off to the driver's thread and back.
    So does BEGIN IMMEDIATE when the lock is free (the connection never waits on the
    loop's thread: busy_timeout 0; ``_on_begin`` waits on the driver's thread instead).
    COMMIT and ROLLBACK keep the driver's thread."""
    adapted = conn.sync_connection.connection.dbapi_connection  # type: ignore[union-attr]
    if isinstance(adapted, _OneTripConnection):
        adapted.inline = True
        adapted._connection._conn.execute("PRAGMA busy_timeout=0")


def _clean(conn: AsyncConnection) -> bool:
    """Open, and in no transaction (neither SQLAlchemy's nor the driver's)."""
    if conn.closed or conn.invalidated or conn.in_transaction():
        return False
    driver = conn.sync_connection.connection.driver_connection  # type: ignore[union-attr]
    return driver is not None and not driver.in_transaction


async def _discard(conn: AsyncConnection) -> None:
    with suppress(Exception):  # going anyway: a failure to close changes nothing
        await conn.invalidate()
        await conn.close()


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
