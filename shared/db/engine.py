"""The service's async engine: PostgreSQL pooled; SQLite in WAL mode on the one-trip
driver adapter, with its BEGIN, pragmas and pool reset tuned for the writer."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import aiosqlite
import msgspec
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, PoolResetState
from sqlalchemy.util import await_

from shared.db.sqlite_driver import OneTripDbapi, OnLoopAsyncEngine

# Set in a connection's ``info`` while its transactions only read: on SQLite they
# BEGIN deferred (no write lock).
READ_ONLY = "tally_read_only"
BUSY_TIMEOUT_MS = 30_000
SQLITE_POOL_SIZE = 10  # connections kept open per service database (each a driver thread)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _begin_waiting(conn: sqlite3.Connection, sql: str) -> None:
    """BEGIN on a connection that never waits for a lock (the kept writer), waiting."""
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    try:
        conn.execute(sql)
    finally:
        conn.execute("PRAGMA busy_timeout=0")


def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    """A new SQLite connection: WAL, and no transaction begun by the driver."""
    dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _begin(fairy: Any) -> None:
    """BEGIN, straight to the driver: IMMEDIATE to write, deferred to read. ``fairy`` is
    the pooled connection SQLAlchemy begins on; this is the dialect's ``do_begin``, not
    a ``begin`` event: any connection event makes SQLAlchemy dispatch its (empty)
    events around every statement, a fifth of a statement's cost (decision 0050)."""
    driver = fairy.driver_connection  # the aiosqlite connection
    adapted = fairy.dbapi_connection
    if getattr(adapted, "begun", False):  # the kept writer began it on the loop already
        adapted.begun = False
        return
    sql = "BEGIN" if fairy.info.get(READ_ONLY) else "BEGIN IMMEDIATE"
    if getattr(fairy.dbapi_connection, "inline", False):
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


def _on_reset(dbapi_connection: Any, record: ConnectionPoolEntry, state: PoolResetState) -> None:
    """A connection back in the pool: rolled back only if a transaction is open."""
    if not state.asyncio_safe or state.terminate_only:
        return  # what SQLAlchemy's own rollback-on-return would skip too
    driver = record.driver_connection
    if driver is not None and driver.in_transaction:
        dbapi_connection.rollback()


# JSON columns (lines, addresses) read back by msgspec: a third of the standard
# library's time on the rows every order read loads (stop 39's profiles). Written by
# SQLAlchemy's default (json.dumps), so what is stored does not change.
_JSON_COLUMN_DECODE = msgspec.json.Decoder().decode


def create_engine(url: str) -> AsyncEngine:
    """SQLite runs in WAL mode. Write transactions take the write lock at BEGIN
    (BEGIN IMMEDIATE), so two writers queue on busy_timeout instead of failing a lock
    upgrade mid-transaction; reads begin deferred and never wait for a writer.

    aiosqlite runs every call on the connection's own thread, and each round trip
    costs: statements take one trip each (``OneTripCursor``), BEGIN goes straight to
    the driver, and a connection returned to the pool is rolled back only when a
    transaction is still open (a committed one needs no rollback trip)."""
    if not is_sqlite(url):
        # No ping before each checkout (three round trips on asyncpg: BEGIN, ";",
        # ROLLBACK): a connection found gone fails its statement, SQLAlchemy
        # invalidates the pool, and the work is retried as a 503 or an event left on
        # the bus (``is_lost_connection``, decision 0044).
        return create_async_engine(
            url,
            pool_size=10,
            max_overflow=10,
            pool_recycle=1800,
            json_deserializer=_JSON_COLUMN_DECODE,
        )
    database = make_url(url).database
    options: dict[str, Any] = {}
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
        # Kept open as on PostgreSQL: SQLAlchemy's default keeps 5, and each connection
        # beyond them (a service answering more than five calls at once, as the ERP and
        # the order service do all day) was opened and closed per use, a new driver
        # thread and the pragmas each time (py-spy: 3 % of the ERP's loop, stop 31).
        options |= {"pool_size": SQLITE_POOL_SIZE, "max_overflow": SQLITE_POOL_SIZE}
    if make_url(url).get_driver_name() == "aiosqlite":
        options["module"] = OneTripDbapi(aiosqlite, sqlite3)
    engine = OnLoopAsyncEngine(
        create_async_engine(
            url,
            # check_same_thread off: the writer's statements run on the loop's thread
            # (shared/db/database.py, ``_run_inline``).
            connect_args={"timeout": 30, "check_same_thread": False},
            pool_reset_on_return=None,
            json_deserializer=_JSON_COLUMN_DECODE,
            **options,
        ).sync_engine
    )
    event.listen(engine.sync_engine, "connect", _on_connect)
    engine.sync_engine.dialect.do_begin = _begin  # type: ignore[method-assign,assignment]
    event.listen(engine.sync_engine, "reset", _on_reset)
    return engine
