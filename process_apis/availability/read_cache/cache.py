"""The cached answers of one process: per sku, the item as v1 and v2 show it and v2's
encoded body, valid while the sku's slot version is the one read before the database
was, and only for the time no hold of the item runs out (its figures change then
without a write)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from process_apis.availability.read_cache.versions import SlotVersions, slot_of
from process_apis.availability.schemas import ItemAvailability
from process_apis.availability.v2.schemas import ItemAvailabilityV2

MAX_ENTRIES = 50_000
# Not the freshness guarantee (the slot versions are): a bound on what a writer that
# died between its commit and its bump could leave behind (decision 0039).
MAX_AGE_SECONDS = 300.0


@dataclass(frozen=True, slots=True)
class Entry:
    v1: ItemAvailability
    v2: ItemAvailabilityV2
    body: bytes  # v2 as JSON
    slot: int
    version: int
    computed_at: datetime  # the service clock's ``now`` the figures are for
    until: datetime | None  # the earliest expiry of an active hold of the item
    stored: float  # time.monotonic()


class ItemCache:
    def __init__(self, versions: SlotVersions) -> None:
        self.versions = versions
        self._entries: dict[str, Entry] = {}

    def get(self, sku: str, now: datetime) -> Entry | None:
        entry = self._entries.get(sku)
        if entry is None:
            return None
        if (
            self.versions.get(entry.slot) != entry.version
            or now < entry.computed_at
            or (entry.until is not None and now >= entry.until)
            or time.monotonic() - entry.stored > MAX_AGE_SECONDS
        ):
            self._entries.pop(sku, None)
            return None
        return entry

    def stamp(self, sku: str) -> tuple[int, int]:
        """(slot, version) to store an answer under: read before the database is."""
        slot = slot_of(sku)
        return slot, self.versions.get(slot)

    def put(self, sku: str, entry: Entry) -> None:
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        self._entries[sku] = entry

    def clear(self) -> None:
        self._entries.clear()
