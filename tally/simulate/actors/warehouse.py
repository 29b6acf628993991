"""The warehouse: picks and ships what is released (a short pick now and then: the
units it cannot find are reported short; and when the WMS refuses a shipment for want
of stock, what the shelf lacks is reported short on the next pass, as a picker who
came back empty-handed would), records carrier delays, receives the
purchase orders when they arrive (one announced, one late and partial) and counts
cycles."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from dataclasses import dataclass
from typing import Any

from tally.simulate.api import Party, json_of
from tally.simulate.journal import Journal
from tally.simulate.plan import WAREHOUSES, Day, Receipt

PICK_QUEUE = ["released", "partially_shipped"]
AT_ONCE = 8
BATCH = 100  # shipments confirmed (deliveries reported) in one call, as the WMS takes
SHORT_PICKS = 0.01
DELAYS = 0.03
DELIVERED = 0.5  # of the shipments not delayed: the carrier's proof of delivery comes today
CARRIERS = ("UPS", "DHL", "FedEx")
CYCLE_COUNTS = (0.3, 0.6, 0.9)  # when in the day
ASN_AHEAD = 0.1  # of the day: how long before its goods an ASN comes
COUNTED_SKUS = 4  # per count, in each warehouse
FOUND_UNITS = 0.2  # of counts: one unit more on the shelf than booked


@dataclass(frozen=True)
class _Picked:
    fulfillment_order_id: str
    order_id: str
    key: str
    lines: list[tuple[str, int]]  # (sku, units to ship)


class Warehouse:
    def __init__(self, day: Day, staff: Party, journal: Journal, day_seconds: float) -> None:
        self.day = day
        self.staff = staff
        self.journal = journal
        self.day_seconds = day_seconds
        self.rng = random.Random(day.seed + 1)
        self.stop = asyncio.Event()
        # Fulfillment orders whose shipment the WMS refused for want of stock.
        self.not_found: set[str] = set()

    async def run(self) -> None:
        started = time.monotonic()
        await asyncio.gather(
            self._receive(started), self._count_cycles(started), self._ship_until_stopped()
        )

    async def _at(self, point: float, started: float) -> None:
        """Until ``point`` (0..1) of the day: by the clock when the day has a length,
        else when the channels are that far through the day's lines (so a day run as
        fast as it goes is still short of its hot skus until the receipts)."""
        if self.day_seconds > 0:
            wait = started + point * self.day_seconds - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        else:
            await self.journal.until_acted_on(point * self.day.lines)

    async def _receive(self, started: float) -> None:
        """The buyer's purchase order for the day's late stock is placed at the start;
        the supplier announces the first delivery with an ASN a little before it comes
        (goods in transit), the second comes unannounced; the dock receives each naming
        the documents it fulfils."""
        if not self.day.receipts:
            return
        purchase_order_id = await self._purchase_order()
        for n, receipt in enumerate(self.day.receipts):
            asn_id = None
            if receipt.asn:
                await self._at(max(0.0, receipt.at - ASN_AHEAD), started)
                asn_id = await self._asn(n, receipt, purchase_order_id)
            await self._at(receipt.at, started)
            body: dict[str, Any] = {
                "warehouse_id": receipt.warehouse_id,
                "lines": [{"sku": sku, "quantity": q} for sku, q in receipt.lines],
            }
            if purchase_order_id is not None:
                body["purchase_order_id"] = purchase_order_id
            if asn_id is not None:
                body["asn_id"] = asn_id
            answer = await self.staff.post(
                "/wms/v1/receipts", body, key=f"sim-{self.day.tag}-po-{n}"
            )
            if answer.status_code != 201:
                self.journal.failed("receipt", answer.status_code, answer.text)
            else:
                self.journal.outcomes["purchase_orders_received"] += 1

    async def _purchase_order(self) -> str | None:
        ordered: dict[tuple[str, str], int] = {}
        for receipt in self.day.receipts:
            for sku, quantity in receipt.lines:
                key = (sku, receipt.warehouse_id)
                ordered[key] = ordered.get(key, 0) + quantity
        body = {
            "supplier_id": f"SIM-{self.day.tag}-SUPPLIER",
            "lines": [
                {"sku": sku, "warehouse_id": warehouse, "quantity": quantity}
                for (sku, warehouse), quantity in sorted(ordered.items())
            ],
        }
        answer = await self.staff.post(
            "/erp/v1/purchase-orders", body, key=f"sim-{self.day.tag}-purchase-order"
        )
        if answer.status_code != 201:
            self.journal.failed("purchase order", answer.status_code, answer.text)
            return None
        self.journal.outcomes["purchase_orders_placed"] += 1
        return str(json_of(answer)["purchase_order_id"])

    async def _asn(self, n: int, receipt: Receipt, purchase_order_id: str | None) -> str | None:
        if purchase_order_id is None:
            return None
        body = {
            "purchase_order_id": purchase_order_id,
            "warehouse_id": receipt.warehouse_id,
            "expected_date": "2030-01-10",
            "lines": [{"sku": sku, "quantity": q} for sku, q in receipt.lines],
        }
        answer = await self.staff.post("/erp/v1/asns", body, key=f"sim-{self.day.tag}-asn-{n}")
        if answer.status_code != 201:
            self.journal.failed("asn", answer.status_code, answer.text)
            return None
        self.journal.outcomes["asns"] += 1
        return str(json_of(answer)["asn_id"])

    async def _count_cycles(self, started: float) -> None:
        """Cycle counts three times a day over a few skus in each warehouse: most find
        the shelves as the WMS says, some find a unit nobody booked (a misplaced case).
        A count is compare-and-set: when a pick moved the figure meanwhile (409
        stale-count) the counter counts again against the new figure."""
        skus = [item.sku for item in self.day.items]
        for round_no, point in enumerate(CYCLE_COUNTS):
            await self._at(point, started)
            for sku in sorted(self.rng.sample(skus, min(COUNTED_SKUS, len(skus)))):
                for warehouse in WAREHOUSES:
                    found = 1 if self.rng.random() < FOUND_UNITS else 0
                    await self._count(f"{round_no}-{warehouse}-{sku}", warehouse, sku, found)

    async def _count(self, ident: str, warehouse: str, sku: str, found: int) -> None:
        stock = await self.staff.pages("/wms/v1/stock", {"sku": sku, "warehouse_id": warehouse})
        expected = sum(int(s["on_hand"]) for s in stock if s.get("lot") is None)
        for attempt in range(5):
            body = {
                "warehouse_id": warehouse,
                "sku": sku,
                "expected_quantity": expected,
                "counted_quantity": expected + found,
            }
            answer = await self.staff.post(
                "/wms/v1/cycle-counts", body, key=f"sim-{self.day.tag}-count-{ident}-{attempt}"
            )
            if answer.status_code == 201:
                self.journal.outcomes["cycle_counts"] += 1
                self.journal.outcomes["cycle_count_units_found"] += found
                return
            if answer.status_code == 409 and "stale-count" in answer.text:
                expected = int(json_of(answer)["current_quantity"])
                continue
            self.journal.failed("cycle count", answer.status_code, answer.text)
            return
        self.journal.outcomes["cycle_counts_left_moving"] += 1  # picked faster than counted

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
        fully shipped) for this day's orders; how many were shipped. The pass's
        shipments are confirmed in batches, as a warehouse closes a wave, and the
        carrier's proofs of delivery come in batches too."""
        ours = set(self.journal.orders.values())
        queue = await self.staff.pages("/wms/v1/fulfillment-orders", {"status": PICK_QUEUE})
        released = [fo for fo in queue if fo["order_id"] in ours]
        picked = [p for p in await self._pick_all(released) if p is not None]
        shipped: list[tuple[str, str]] = []  # (shipment id, key)
        for start in range(0, len(picked), BATCH):
            shipped += await self._confirm(picked[start : start + BATCH])
        delivered: list[tuple[str, str]] = []
        for shipment_id, key in shipped:
            if self.rng.random() < DELAYS:
                delay = {"reason": "carrier_exception", "promised_date": "2030-01-15"}
                await self.staff.post(
                    f"/wms/v1/shipments/{shipment_id}/delays", delay, key=f"{key}-delay"
                )
                self.journal.outcomes["carrier_delays"] += 1
            elif self.rng.random() < DELIVERED:
                delivered.append((shipment_id, key))
        for start in range(0, len(delivered), BATCH):
            await self._deliver(delivered[start : start + BATCH])
        return len(released)

    async def _pick_all(self, released: list[dict[str, Any]]) -> list[_Picked | None]:
        # The draws in queue order, then the short picks' calls at once.
        plans = [(fo, self.rng.random() < SHORT_PICKS) for fo in released]
        gate = asyncio.Semaphore(AT_ONCE)

        async def one(fo: dict[str, Any], short: bool) -> _Picked | None:
            async with gate:
                return await self._pick(fo, short)

        return list(await asyncio.gather(*(one(fo, short) for fo, short in plans)))

    async def _pick(self, fo: dict[str, Any], short: bool) -> _Picked | None:
        """The fulfillment order picked: what is left to ship after a short pick (None:
        nothing), with its shipment's key."""
        fo_id = fo["fulfillment_order_id"]
        open_lines = [
            (line["sku"], line["quantity"] - line.get("shipped", 0))
            for line in fo["lines"]
            if line["quantity"] - line.get("shipped", 0) > 0
        ]
        if not open_lines:
            return None
        key = f"sim-{fo_id}-{sum(q for _, q in open_lines)}"
        if fo_id in self.not_found:
            self.not_found.discard(fo_id)
            open_lines = await self._short_what_is_missing(fo, open_lines, key)
            if not open_lines:
                return None
        if short:
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
                return None
        return _Picked(fo_id, str(fo["order_id"]), key, open_lines)

    async def _short_what_is_missing(
        self, fo: dict[str, Any], open_lines: list[tuple[str, int]], key: str
    ) -> list[tuple[str, int]]:
        """Reports short the units of each line the warehouse's stock cannot give;
        what is left to ship."""
        missing: dict[str, int] = {}
        for sku, quantity in open_lines:
            rows = await self.staff.pages(
                "/wms/v1/stock", {"sku": sku, "warehouse_id": fo["warehouse_id"]}
            )
            available = sum(int(row["available"]) for row in rows)
            if available < quantity:
                missing[sku] = quantity - max(0, available)
        if not missing:
            return open_lines
        shorted = {"lines": [{"sku": s, "quantity": q} for s, q in sorted(missing.items())]}
        answer = await self.staff.post(
            f"/wms/v1/fulfillment-orders/{fo['fulfillment_order_id']}/shortages",
            shorted,
            key=f"{key}-not-found",
        )
        if answer.status_code != 201:
            if answer.status_code != 409:
                self.journal.failed("shortage", answer.status_code, answer.text)
            return open_lines
        self.journal.outcomes["short_picks_not_found"] += 1
        left = [(s, q - missing.get(s, 0)) for s, q in open_lines]
        return [(s, q) for s, q in left if q > 0]

    async def _confirm(self, picked: list[_Picked]) -> list[tuple[str, str]]:
        """A wave's shipments in one call; (shipment id, key) of those recorded."""
        items = [
            {
                "idempotency_key": f"{p.key}-ship",
                "fulfillment_order_id": p.fulfillment_order_id,
                "shipment": {
                    "carrier": self.rng.choice(CARRIERS),
                    "tracking_number": (
                        f"1Z{uuid.UUID(int=self.rng.getrandbits(128)).hex[:12].upper()}"
                    ),
                    "lines": [{"sku": s, "quantity": q} for s, q in p.lines],
                },
            }
            for p in picked
        ]
        answer = await self.staff.post("/wms/v1/shipments/batch", {"shipments": items})
        if answer.status_code != 200:
            self.journal.failed("shipment", answer.status_code, answer.text)
            return []
        shipped: list[tuple[str, str]] = []
        for p, result in zip(picked, json_of(answer)["results"], strict=True):
            refusal = result.get("refusal")
            if refusal is not None:
                if str(refusal["type"]).endswith("/insufficient-stock"):
                    self.not_found.add(p.fulfillment_order_id)
                elif refusal["status"] != 409:  # 409: cancelled or changed meanwhile
                    self.journal.failed("shipment", refusal["status"], refusal["detail"])
                continue
            self.journal.outcomes["shipments"] += 1
            self.journal.shipped_orders[p.order_id] = None
            shipped.append((str(result["shipment"]["shipment_id"]), p.key))
        return shipped

    async def _deliver(self, delivered: list[tuple[str, str]]) -> None:
        """The carrier's proofs of delivery, in one call."""
        items = [
            {"idempotency_key": f"{key}-delivered", "shipment_id": shipment_id, "delivery": {}}
            for shipment_id, key in delivered
        ]
        answer = await self.staff.post("/wms/v1/deliveries/batch", {"deliveries": items})
        if answer.status_code != 200:
            self.journal.failed("delivery", answer.status_code, answer.text)
            return
        for result in json_of(answer)["results"]:
            refusal = result.get("refusal")
            if refusal is None:
                self.journal.outcomes["deliveries"] += 1
            else:
                self.journal.failed("delivery", refusal["status"], refusal["detail"])
