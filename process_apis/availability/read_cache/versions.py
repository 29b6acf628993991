"""Per-sku-slot versions shared by every process of one host: a file in the data
directory, mapped into memory. A write stores a fresh random value into the slot of
each sku it changed, after its commit and before its answer; a cached answer is
served only while its slot still holds the value read before the answer was read
from the database. Reading a slot is a memory read (no system call).

A new random value per write, never an increment: two processes bumping one slot at
once cannot lose the change (an increment's read-modify-write could write back the
value a reader already cached under). Slots are 8-byte aligned 64-bit words."""

from __future__ import annotations

import mmap
import os
import random
import zlib
from collections.abc import Iterable
from pathlib import Path

SLOTS = 1 << 14  # 16,384 slots, 128 KiB: skus sharing a slot invalidate each other
_MASK = SLOTS - 1
_SIZE = SLOTS * 8


def slot_of(sku: str) -> int:
    """The sku's slot: crc32, the same in every process (``hash()`` is salted)."""
    return zlib.crc32(sku.encode()) & _MASK


class SlotVersions:
    """The shared slot versions, in ``path`` (created zero-filled if missing)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < _SIZE:
                os.ftruncate(fd, _SIZE)
            self._map = mmap.mmap(fd, _SIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        finally:
            os.close(fd)
        self._words = memoryview(self._map).cast("Q")
        self._random = random.Random()  # seeded from os.urandom: differs per process

    def get(self, slot: int) -> int:
        return int(self._words[slot])

    def bump(self, skus: Iterable[str]) -> None:
        """Gives the slot of every sku a value it has not had (a fresh random one)."""
        words, fresh = self._words, self._random.getrandbits
        for slot in {slot_of(sku) for sku in skus}:
            value = fresh(64)
            while value == words[slot]:
                value = fresh(64)
            words[slot] = value

    def close(self) -> None:
        self._words.release()
        self._map.close()
