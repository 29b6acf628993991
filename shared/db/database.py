"""The service's database: one engine, schema creation, and transactions that collect
the events they emit; the schema's event writer (the outbox) stores them inside the
transaction, and ``on_commit`` listeners (the outbox relay) get them once it commits.

On SQLite this process's writers queue for one kept writer connection, and processes
writing the same file take turns on a file lock (decision 0018)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, MetaData, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db.checkpoints import WalCheckpoints
from shared.db.engine import READ_ONLY, create_engine, is_sqlite
from shared.db.sqlite_driver import OneTripConnection
from shared.leader import FileLock

LOOKUPS_KEPT = 4  # SQLite: idle lookup connections a database keeps for the next lookups

# The (stream, event) pairs a transaction emitted.
Emitted = list[tuple[str, Any]]
# Stores a transaction's emitted events inside that transaction: (connection, the
# schema, the events).
EventWriter = Callable[[AsyncConnection, MetaData, Emitted], Awaitable[None]]

# Key in ``MetaData.info``: the schema's event writer. The schema that declares an
# outbox installs it there (``shared.events.outbox.outbox_table``), so the database
# stores events without importing the event modules, which build on it.
EVENT_WRITER = "tally.event_writer"


def write_events_with(metadata: MetaData, writer: EventWriter) -> None:
    """Installs ``writer`` as the way transactions on ``metadata`` store their events."""
    metadata.info[EVENT_WRITER] = writer


class Database:
    """The service's database: engine, schema creation and transactions."""

    def __init__(self, url: str, metadata: MetaData) -> None:
        self.url = url
        self.metadata = metadata
        self.engine = create_engine(url)
        self.sqlite = is_sqlite(url)
        self._after_commit: list[Callable[[Emitted], None]] = []
        # SQLite has one writer per file: queueing this process's writers on an asyncio
        # lock costs nothing, while queueing them on busy_timeout sleeps and retries.
        # The lock's holder writes on one connection kept open for writing (no pool
        # check-out, check-in and reset per transaction).
        self._sqlite_writer = asyncio.Lock() if self.sqlite else None
        self._writer_conn: AsyncConnection | None = None
        self._idle_lookups: list[AsyncConnection] = []  # SQLite: kept for the next lookup
        # ... and across the processes writing the same file (the workers of a service,
        # a CLI): a file lock, handed over the moment it is released, where SQLite's
        # busy_timeout would poll with sleeps of up to 100 ms.
        database = make_url(url).database if self.sqlite else None
        self._sqlite_turn = (
            FileLock(Path(f"{database}-writer.lock"))
            if database and database != ":memory:"
            else None
        )
        # The kept writer's commits run no WAL checkpoint (they commit on the loop's
        # thread): the database checkpoints them on a thread (shared/db/checkpoints.py).
        self._checkpoints = WalCheckpoints(database) if self._sqlite_turn and database else None

    def on_commit(self, callback: Callable[[Emitted], None]) -> None:
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
        async with self._writing() as conn:
            async with _begun(conn):
                tx = Tx(conn)
                yield tx
                if tx.events_written:
                    await self._event_writer()(conn, self.metadata, tx.events_written)
            if tx.events_written:
                for callback in self._after_commit:
                    callback(tx.events_written)
            if self._checkpoints is not None and self._checkpoints.due():
                await self._checkpoints.run()  # in the writer's turn: no commit between

    def _event_writer(self) -> EventWriter:
        writer: EventWriter | None = self.metadata.info.get(EVENT_WRITER)
        if writer is None:
            raise RuntimeError(
                "a transaction emitted events on a schema without an outbox"
                " (declare it: shared.events.outbox.outbox_table(metadata))"
            )
        return writer

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
            if isinstance(adapted, OneTripConnection):
                adapted.reading = True
            try:
                async with conn.begin():
                    yield conn
            finally:
                _forget_read_only(sync)
                if isinstance(adapted, OneTripConnection):
                    adapted.reading = False

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads only: on SQLite its transactions begin deferred."""
        async with self.engine.connect() as conn:
            # Kept before the yield: a cancelled caller may leave the connection closed,
            # and the clean-up must not raise over the cancellation.
            sync = conn.sync_connection
            if self.sqlite and sync is not None:
                sync.info[READ_ONLY] = True
            try:
                yield conn
            finally:
                if self.sqlite and sync is not None:
                    _forget_read_only(sync)

    @asynccontextmanager
    async def lookup(self) -> AsyncIterator[AsyncConnection]:
        """A read of a few rows by key (an idempotency record, an order by its id, the
        events an inbox holds): on SQLite its statements, BEGIN and its end run on the
        event loop's thread, as the kept writer's do (decisions 0017, 0046). A WAL
        reader waits for no lock, and an indexed read takes microseconds, less than the
        hand-off to the driver's thread and back. Nothing interrupts a statement on the
        loop: reads that scan, page or report belong in ``read()``.

        Its connection is kept for the next lookup (up to ``LOOKUPS_KEPT`` of them)
        instead of going back to the pool: a check-out and a check-in through the async
        layer cost ten times the lookup's statements (decision 0051)."""
        if not self.sqlite:
            async with self.read() as conn:
                yield conn
            return
        conn = self._idle_lookups.pop() if self._idle_lookups else await self._lookup_conn()
        keep = False
        try:
            yield conn
        finally:
            sync = conn.sync_connection
            with suppress(Exception):  # a connection that cannot end it is not kept
                if sync is not None and sync.in_transaction():
                    sync.rollback()  # on the loop: a read's ROLLBACK is ``inline``
                keep = _clean(conn) and len(self._idle_lookups) < LOOKUPS_KEPT
            if keep:
                self._idle_lookups.append(conn)
            else:
                await _give_back(conn)

    async def _lookup_conn(self) -> AsyncConnection:
        conn = await self.engine.connect()
        sync = conn.sync_connection
        assert sync is not None
        sync.info[READ_ONLY] = True
        adapted = sync.connection.dbapi_connection
        if isinstance(adapted, OneTripConnection):
            adapted.inline = adapted.reading = True
        return conn

    async def dispose(self) -> None:
        while self._idle_lookups:
            await _give_back(self._idle_lookups.pop())
        if self._checkpoints is not None:
            await asyncio.to_thread(self._checkpoints.close)
        if self._sqlite_turn is not None:
            self._sqlite_turn.close()
        if self._writer_conn is not None:
            conn, self._writer_conn = self._writer_conn, None
            await _discard(conn)
        await self.engine.dispose()


@asynccontextmanager
async def _begun(conn: AsyncConnection) -> AsyncIterator[None]:
    """A write transaction on ``conn``, committed if the block ends normally. The kept
    SQLite writer begins and ends it on the loop's thread without the async layer's
    greenlets (a third of an empty transaction's 49 µs): its BEGIN IMMEDIATE never
    waits there (busy_timeout 0) and its COMMIT runs no checkpoint. When another
    process holds the write lock, the BEGIN waits the async layer's way, on the driver's
    thread (``engine._begin``)."""
    sync = conn.sync_connection
    adapted = sync.connection.dbapi_connection if sync is not None else None
    if sync is None or not isinstance(adapted, OneTripConnection) or not adapted.begins_on_loop():
        async with conn.begin():
            yield
        return
    transaction = sync.begin()
    try:
        yield
    except BaseException:
        if transaction.is_active:
            transaction.rollback()
        raise
    if transaction.is_active:
        transaction.commit()


def _forget_read_only(sync: Connection) -> None:
    """Drops the read-only mark, unless the connection can no longer be used (a caller
    cancelled mid-statement leaves its transaction invalid): the clean-up must not
    raise over the cancellation, or a cancelled task would carry on as if an ordinary
    error had happened (an ``except Exception`` loop retrying instead of stopping). The
    pool rolls such a connection back when it is returned."""
    with suppress(InvalidRequestError):
        sync.info.pop(READ_ONLY, None)


async def _give_back(lookup: AsyncConnection) -> None:
    """A lookup's connection back to the pool, unmarked (a pooled connection is anyone's)."""
    sync = lookup.sync_connection
    if sync is not None and not lookup.closed and not lookup.invalidated:
        _forget_read_only(sync)
        with suppress(Exception):
            adapted = sync.connection.dbapi_connection
            if isinstance(adapted, OneTripConnection):
                adapted.inline = adapted.reading = False
    await lookup.close()


def _run_inline(conn: AsyncConnection) -> None:
    """The writer's statements, once its BEGIN IMMEDIATE holds the write lock, run on
    the event loop's thread: they wait for no lock (WAL readers never block a writer)
    and take microseconds, less than the hand-off to the driver's thread and back.
    So does BEGIN IMMEDIATE when the lock is free (the connection never waits on the
    loop's thread: busy_timeout 0; ``_on_begin`` waits on the driver's thread instead).
    COMMIT and ROLLBACK keep the driver's thread."""
    adapted = conn.sync_connection.connection.dbapi_connection  # type: ignore[union-attr]
    if isinstance(adapted, OneTripConnection):
        adapted.inline = True
        adapted._connection._conn.execute("PRAGMA busy_timeout=0")
        adapted._connection._conn.execute("PRAGMA wal_autocheckpoint=0")
        adapted.no_checkpoints = True


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
        self.events_written: Emitted = []
        # Rows loaded ahead for this transaction's later steps (an inbox run's
        # ``run_start``), by the key their reader gives; gone with the transaction.
        self.prefetched: dict[Any, Any] = {}

    def emit(self, stream: str, event_: Any) -> None:
        self.events_written.append((stream, event_))
