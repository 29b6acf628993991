"""Background job: writes the expiry of lapsed holds to the ledger now and then."""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress

from process_apis.availability.holds.service import sweep
from shared.db import Database

log = logging.getLogger("tally.availability")


class HoldSweeper:
    def __init__(self, db: Database, every_seconds: float = 5.0) -> None:
        self.db = db
        self.every_seconds = every_seconds

    async def __call__(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                while await sweep(self.db) and not stop.is_set():
                    pass
            except Exception:  # the next round tries again; holds already stopped counting
                log.exception("hold sweep failed")
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.every_seconds)
