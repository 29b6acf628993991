"""Transactions the database gave up on because of another one: a deadlock victim or
a serialization failure on PostgreSQL. Nothing of them was committed, so the work may
run again as it was; a caller is told to retry (503), an event stays on the bus
without counting as a failure, and a service's own short transaction retries in place.

PostgreSQL picks a victim whenever two writers wait on each other's rows, which lock
ordering makes rare but cannot rule out where one transaction takes its locks in
several statements (a run of events, a batch of allocations)."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError

log = logging.getLogger("tally.db")
T = TypeVar("T")

# deadlock_detected, serialization_failure
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})


def _in_chain(exc: BaseException | None, found: Callable[[DBAPIError], bool]) -> bool:
    """Whether ``exc`` or what it was raised from is a ``DBAPIError`` that ``found``."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, DBAPIError) and found(exc):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def _sqlstate(exc: DBAPIError) -> str | None:
    return getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)


def is_conflict(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or what it was raised from) is a deadlock or serialization failure."""
    return _in_chain(exc, lambda error: _sqlstate(error) in RETRYABLE_SQLSTATES)


def is_lost_connection(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or what it was raised from) is a statement that failed because
    the database connection had gone (a server restart, a terminated backend). The
    pool checks no connection before use (decision 0044): SQLAlchemy invalidates this
    one and every one checked out before the failure, so the next attempt connects
    anew. Whether a lost COMMIT had committed is unknown, so the work is retried only
    where a retry is safe: a caller's request with its Idempotency-Key, an event
    through the inbox."""
    return _in_chain(exc, lambda error: bool(error.connection_invalidated))


async def retrying_conflicts(
    work: Callable[[], Awaitable[T]], *, attempts: int = 4, what: str = "a transaction"
) -> T:
    """Runs ``work`` (which opens and commits its own transaction) again when the
    database rolled it back as a deadlock victim or serialization failure, after a
    short jittered pause; the last attempt's exception is raised."""
    for attempt in range(1, attempts + 1):
        try:
            return await work()
        except Exception as exc:
            if attempt == attempts or not is_conflict(exc):
                raise
            log.warning("%s lost a lock conflict (attempt %d); again", what, attempt)
            await asyncio.sleep(random.uniform(0.005, 0.02) * 2**attempt)
    raise AssertionError("unreachable")  # pragma: no cover
