"""The skus a transaction changed, noted on its connection by the ledger (every write to
positions, and so to holds and allocations, goes through it) and taken once the
transaction ends, to invalidate their cached answers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

_KEY = "tally_read_cache_touched"


def _info(conn: AsyncConnection) -> dict[Any, Any] | None:
    sync = conn.sync_connection
    return None if sync is None else sync.info


def note(conn: AsyncConnection, skus: Iterable[str]) -> None:
    info = _info(conn)
    if info is not None:
        info.setdefault(_KEY, set()).update(skus)


def take(conn: AsyncConnection) -> set[str]:
    info = _info(conn)
    found: set[str] = set() if info is None else info.pop(_KEY, set())
    return found
