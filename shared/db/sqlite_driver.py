"""SQLite: one trip to aiosqlite's thread per statement.

aiosqlite runs each call on the connection's own thread; SQLAlchemy's adapter makes
three or four such trips per statement (open a cursor, execute, fetch, close), each a
thread hand-off and an event-loop wake-up. These classes run the whole statement in
one trip and hand back the rows, the description, rowcount and lastrowid: a producing
transaction (BEGIN, two INSERTs, COMMIT) costs four trips instead of eleven."""

from __future__ import annotations

import collections
import sqlite3
from typing import Any, TypeVar

# What SQLAlchemy's async layer runs on (its asyncio extra); it ships no types.
from greenlet import getcurrent  # type: ignore[import-untyped]
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.engine.result import SimpleResultMetaData
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.util import EMPTY_DICT, await_

from shared.db.statement_plans import (
    NO_ROWS,
    PlannedResult,
    run_planned,
    run_statement,
    transaction_active,
    wrapped_error,
)

T = TypeVar("T")


async def _done(value: T) -> T:
    return value


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
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
                result = run_statement(driver._conn, sql, params, many)
                if getattr(getcurrent(), "__sqlalchemy_greenlet_provider__", False):
                    # Run by SQLAlchemy's async layer, which requires one await per
                    # statement: awaiting a finished coroutine does not touch the loop.
                    result = await_(_done(result))
            else:
                result = await_(driver._execute(run_statement, driver._conn, sql, params, many))
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


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    """``inline``: statements inside a transaction run on the event loop's thread;
    ``reading``: so do BEGIN, COMMIT and ROLLBACK of a read transaction (a deferred
    BEGIN takes no lock, and ending a transaction that wrote nothing writes nothing);
    ``no_checkpoints``: so do COMMIT and ROLLBACK of a writer whose commits run no WAL
    checkpoint (``wal_autocheckpoint=0``; with ``synchronous=NORMAL`` a WAL commit then
    appends its pages and syncs nothing). The database checkpoints on a thread."""

    __slots__ = ("begun", "inline", "no_checkpoints", "reading")
    _cursor_cls = OneTripCursor

    def __init__(self, dbapi: Any, connection: Any) -> None:
        super().__init__(dbapi, connection)
        self.inline = False
        self.reading = False
        self.no_checkpoints = False
        self.begun = False  # BEGIN issued by ``begins_on_loop``: SQLAlchemy's is skipped

    def _ends_on_loop(self) -> bool:
        return self.inline and (self.reading or self.no_checkpoints)

    def begins_on_loop(self) -> bool:
        """The kept writer, its write lock taken here at once: BEGIN IMMEDIATE issued
        now, on the loop's thread (SQLAlchemy's BEGIN then finds it begun). False when
        another process holds the lock (the caller begins the async layer's way, which
        waits on the driver's thread)."""
        if not (self.inline and self.no_checkpoints and self._connection._connection):
            return False
        driver = self._connection._conn
        if driver.in_transaction:
            return False
        try:
            driver.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY:
                return False
            raise
        self.begun = True
        return True

    def commit(self) -> None:
        if not self._ends_on_loop():
            super().commit()
        elif self._connection._connection:
            self._connection._conn.commit()

    def rollback(self) -> None:
        if not self._ends_on_loop():
            super().rollback()
        elif self._connection._connection:
            self._connection._conn.rollback()


def _ready_on_loop(conn: AsyncConnection) -> bool:
    """Whether ``conn``'s next statement runs on the loop's thread: ``inline``, inside a
    transaction SQLAlchemy and the driver both have open. A lookup's connection
    (``inline`` and ``reading``) with none open yet begins it here, on the loop: its
    deferred BEGIN takes no lock (``engine._begin``)."""
    sync = conn.sync_connection
    if sync is None:
        return False
    fairy = sync._dbapi_connection
    adapted = fairy.dbapi_connection if fairy is not None else None
    if (
        not isinstance(adapted, OneTripConnection)
        or not adapted.inline
        or adapted._connection._connection is None
    ):
        return False
    driver_open = adapted._connection._conn.in_transaction
    if sync.in_transaction():
        return bool(driver_open)
    if adapted.reading and not driver_open:
        sync.begin()
        return True
    return False


def _sqlite_of(sync: Any) -> sqlite3.Connection:
    return sync._dbapi_connection.dbapi_connection._connection._conn  # type: ignore[no-any-return]


def run_driver_sql(
    sync: Any, driver: sqlite3.Connection, sql: str, parameters: Any
) -> PlannedResult | None:
    """Plain SQL (``exec_driver_sql``: a savepoint, a multi-row insert of positional
    rows) straight on ``driver``, as SQLAlchemy would pass it: no type processing,
    a list of rows is an executemany. None when it cannot (the caller's way then)."""
    if sync._execution_options or not transaction_active(sync):
        return None
    many = isinstance(parameters, list)
    if many and not parameters:
        return None
    try:
        description, rowcount, _, rows = run_statement(driver, sql, parameters, many)
    except sqlite3.Error as error:
        raise wrapped_error(sync, sql, parameters, error) from error
    metadata = SimpleResultMetaData([d[0] for d in description]) if description else NO_ROWS
    return PlannedResult(metadata, rows, rowcount)


class OnLoopAsyncConnection(AsyncConnection):
    """Statements that run on the loop's thread are executed there directly: the
    async layer's greenlet per statement (spawned, switched to and back) was about
    half of an INSERT's 34 µs (decision 0050), and from a plan where one can be made,
    without SQLAlchemy's execution set-up (decision 0051). Any other statement (BEGIN,
    a read in ``read()``) takes the async layer's way; PostgreSQL's engine is a plain
    one."""

    async def execute(
        self, statement: Any, parameters: Any = None, *, execution_options: Any = None
    ) -> Any:
        if _ready_on_loop(self):
            sync = self._proxied
            if not execution_options:
                planned = run_planned(sync, _sqlite_of(sync), statement, parameters)
                if planned is not None:
                    return planned
            return sync.execute(statement, parameters, execution_options=execution_options)
        return await super().execute(statement, parameters, execution_options=execution_options)

    async def exec_driver_sql(
        self, statement: str, parameters: Any = None, execution_options: Any = None
    ) -> Any:
        if _ready_on_loop(self):
            sync = self._proxied
            if not execution_options:
                done = run_driver_sql(sync, _sqlite_of(sync), statement, parameters)
                if done is not None:
                    return done
            return sync.exec_driver_sql(statement, parameters, execution_options)
        return await super().exec_driver_sql(statement, parameters, execution_options)


class OnLoopAsyncEngine(AsyncEngine):
    _connection_cls = OnLoopAsyncConnection


class OneTripDbapi(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> AsyncAdapt_aiosqlite_connection:
        connection = self.aiosqlite.connect(*arg, **kw)
        connection._thread.daemon = True  # as SQLAlchemy's own adapter does
        return OneTripConnection(self, await_(connection))
