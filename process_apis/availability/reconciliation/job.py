"""The reconciler the routes and the scheduled job share."""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress

from process_apis.availability.reconciliation.schemas import RunReport
from process_apis.availability.reconciliation.service import reconcile
from process_apis.availability.reconciliation.settings import ReconcileSettings
from process_apis.availability.reconciliation.sources import StockSources
from shared.db import Database

log = logging.getLogger("tally.availability")


class Reconciler:
    def __init__(self, db: Database, sources: StockSources, settings: ReconcileSettings) -> None:
        self.db = db
        self.sources = sources
        self.settings = settings

    async def run(
        self, window_seconds: int | None = None, threshold: int | None = None
    ) -> RunReport:
        return await reconcile(
            self.db,
            self.sources,
            window_seconds=self.settings.window_seconds
            if window_seconds is None
            else window_seconds,
            threshold=self.settings.threshold if threshold is None else threshold,
        )

    async def scheduled(self, stop: asyncio.Event) -> None:
        """Runs every ``interval_seconds`` until the service stops (0: never)."""
        interval = self.settings.interval_seconds
        if interval <= 0:
            return
        while not stop.is_set():
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)
            if stop.is_set():
                return
            try:
                report = await self.run()
            except Exception:
                log.exception("scheduled reconciliation failed; retrying next interval")
                continue
            log.info(
                "reconciliation %s: %d checked, %d settling, %d exceptions",
                report.run_id,
                report.checked,
                len(report.settling),
                len(report.exceptions),
            )
