"""One async SQLAlchemy engine per service, with a transaction helper that also
collects the events a transaction emits.

- ``engine``: the engine and SQLite's pragmas, BEGIN and pool reset;
- ``sqlite_driver``: the SQLite adapter that runs a statement in one driver trip;
- ``database``: ``Database`` (schema, transactions, the SQLite writer) and ``Tx``;
- ``conflicts``: deadlock victims and serialization failures, retried or answered 503;
- ``savepoints``: a savepoint in plain SQL, for the savepoints a hot path takes per item."""

from shared.db.conflicts import is_conflict, is_lost_connection, retrying_conflicts
from shared.db.database import (
    EVENT_WRITER,
    Database,
    Emitted,
    EventWriter,
    Tx,
    write_events_with,
)
from shared.db.engine import BUSY_TIMEOUT_MS, READ_ONLY, create_engine, is_sqlite
from shared.db.savepoints import insert_if_new, savepoint
from shared.waiting import sleep_or_wake

__all__ = [
    "BUSY_TIMEOUT_MS",
    "EVENT_WRITER",
    "READ_ONLY",
    "Database",
    "Emitted",
    "EventWriter",
    "Tx",
    "create_engine",
    "insert_if_new",
    "is_conflict",
    "is_lost_connection",
    "is_sqlite",
    "retrying_conflicts",
    "savepoint",
    "sleep_or_wake",
    "write_events_with",
]
