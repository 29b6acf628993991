"""Switching the cache on, and making every write transaction invalidate what it
changed: before its commit and again after it, before the writer answers.

``TALLY_AVAILABILITY_READ_CACHE``: ``auto`` (the default) caches on SQLite, whose
database file, and so every process writing it, is on this host; it does not cache on
PostgreSQL, whose writers may run on other hosts the slot versions do not reach.
``on`` caches on PostgreSQL too: the operator states that every process writing the
database runs on this host with this data directory. ``off`` never caches."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from process_apis.availability.read_cache import touched
from process_apis.availability.read_cache.cache import ItemCache
from process_apis.availability.read_cache.versions import SlotVersions
from shared.db import Database, Tx
from shared.settings import Settings

ENV = "TALLY_AVAILABILITY_READ_CACHE"
FILE = "availability.read-cache"


def cache_enabled(db: Database) -> bool:
    mode = os.environ.get(ENV, "auto").strip().lower() or "auto"
    if mode not in ("auto", "on", "off"):
        raise ValueError(f"{ENV} must be auto, on or off, not {mode!r}")
    return mode == "on" or (mode == "auto" and db.sqlite)


def install(settings: Settings, db: Database) -> ItemCache | None:
    """The process's cache (None when off). Whether on or off, this process's writes
    bump the shared versions, so the other workers' caches see them."""
    versions = SlotVersions(settings.data_dir / FILE)
    invalidating(db, versions)
    return ItemCache(versions) if cache_enabled(db) else None


def invalidating(db: Database, versions: SlotVersions) -> None:
    """Wraps ``db.transaction`` (for every caller: routes, batcher, consumers,
    sweeper) so the skus the ledger noted get fresh versions twice: before COMMIT,
    so an entry cached earlier is dropped even if this process dies before answering,
    and after it, so an entry read between the two (the old rows) is dropped too."""
    opened: Callable[[], AbstractAsyncContextManager[Tx]] = db.transaction

    @asynccontextmanager
    async def transaction() -> AsyncIterator[Tx]:
        skus: set[str] = set()
        try:
            async with opened() as tx:
                try:
                    yield tx
                finally:
                    skus = touched.take(tx.conn)
                    versions.bump(skus)
        finally:
            versions.bump(skus)  # committed (or rolled back): before the answer

    db.transaction = transaction  # type: ignore[method-assign]
