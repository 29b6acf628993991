"""The warehouse: picks and ships what is released (a short pick now and then: the
units it cannot find are reported short), records carrier delays and deliveries, and
receives the purchase orders when they arrive (one announced, one late and partial)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from typing import Any

from tally.simulate.api import Party
from tally.simulate.journal import Journal
from tally.simulate.plan import Day

PICK_QUEUE = ["released", "partially_shipped"]
AT_ONCE = 8
SHORT_PICKS = 0.01
DELAYS = 0.03
CARRIERS = ("UPS", "DHL", "FedEx")


class Warehouse:
    def __init__(self, day: Day, staff: Party, journal: Journal, day_seconds: float) -> None:
        self.day = day
        self.staff = staff
        self.journal = journal
        self.day_seconds = day_seconds
        self.rng = random.Random(day.seed + 1)
        self.stop = asyncio.Event()

    async def run(self) -> None:
        await asyncio.gather(self._receive(), self._ship_until_stopped())

    async def _receive(self) -> None:
        started = time.monotonic()
        for n, receipt in enumerate(self.day.receipts):
            wait = started + receipt.at * self.day_seconds - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            body = {
                "warehouse_id": receipt.warehouse_id,
                "lines": [{"sku": sku, "quantity": q} for sku, q in receipt.lines],
            }
            answer = await self.staff.post(
                "/wms/v1/receipts", body, key=f"sim-{self.day.tag}-po-{n}"
            )
            if answer.status_code != 201:
                self.journal.failed("receipt", answer.status_code, answer.text)
            else:
                self.journal.outcomes["purchase_orders_received"] += 1

    async def _ship_until_stopped(self) -> None:
        while True:
            stopping = self.stop.is_set()
            await self.ship_released()
            if stopping:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), 0.5)

    async def ship_released(self) -> int:
        """One pass over the pick queue (the fulfillment orders released and not yet
        fully shipped) for this day's orders; how many were shipped."""
        ours = set(self.journal.orders.values())
        queue = await self.staff.pages("/wms/v1/fulfillment-orders", {"status": PICK_QUEUE})
        released = [fo for fo in queue if fo["order_id"] in ours]
        gate = asyncio.Semaphore(AT_ONCE)

        async def one(fo: dict[str, Any]) -> None:
            async with gate:
                await self._fulfil(fo)

        await asyncio.gather(*(one(fo) for fo in released))
        return len(released)

    async def _fulfil(self, fo: dict[str, Any]) -> None:
        fo_id = fo["fulfillment_order_id"]
        open_lines = [
            (line["sku"], line["quantity"] - line.get("shipped", 0))
            for line in fo["lines"]
            if line["quantity"] - line.get("shipped", 0) > 0
        ]
        if not open_lines:
            return
        key = f"sim-{fo_id}-{sum(q for _, q in open_lines)}"
        if self.rng.random() < SHORT_PICKS:
            sku = open_lines[0][0]
            shorted = {"lines": [{"sku": sku, "quantity": 1}]}
            answer = await self.staff.post(
                f"/wms/v1/fulfillment-orders/{fo_id}/shortages", shorted, key=f"{key}-short"
            )
            if answer.status_code == 201:
                self.journal.outcomes["short_picks"] += 1
                open_lines = [(s, q - 1 if s == sku else q) for s, q in open_lines]
                open_lines = [(s, q) for s, q in open_lines if q > 0]
            elif answer.status_code != 409:
                self.journal.failed("shortage", answer.status_code, answer.text)
            if not open_lines:
                return
        shipment = {
            "carrier": self.rng.choice(CARRIERS),
            "tracking_number": f"1Z{uuid.UUID(int=self.rng.getrandbits(128)).hex[:12].upper()}",
            "lines": [{"sku": s, "quantity": q} for s, q in open_lines],
        }
        answer = await self.staff.post(
            f"/wms/v1/fulfillment-orders/{fo_id}/shipments", shipment, key=f"{key}-ship"
        )
        if answer.status_code == 409:
            return  # cancelled or changed meanwhile: the next pass sees it as it is
        if answer.status_code != 201:
            self.journal.failed("shipment", answer.status_code, answer.text)
            return
        shipped = answer.json()
        self.journal.outcomes["shipments"] += 1
        self.journal.shipped_orders.add(fo["order_id"])
        if self.rng.random() < DELAYS:
            delay = {"reason": "carrier_exception", "promised_date": "2030-01-15"}
            await self.staff.post(
                f"/wms/v1/shipments/{shipped['shipment_id']}/delays", delay, key=f"{key}-delay"
            )
            self.journal.outcomes["carrier_delays"] += 1
