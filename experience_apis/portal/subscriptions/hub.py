"""One bus reader per portal process, fanning updates out to its subscribers.

The reader tails the feeds' streams from "now" (what was appended before the process
started is history: the queries answer it) with the bus's plain ``read_all``, like
``tally events tail --follow``: no consumer group, nothing acknowledged, nothing kept
for a process that is down. Each subscriber holds a bounded queue; one that does not
keep up loses its oldest updates, never the reader's pace."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from experience_apis.portal.subscriptions.owners import Carried, Owners
from experience_apis.portal.subscriptions.updates import (
    STREAMS,
    Routed,
    ShipmentChange,
    ShipmentUpdate,
    Update,
    updates_of,
)
from shared.events.bus import EventBus

log = logging.getLogger("tally.portal.subscriptions")

PAGE = 500
POLL_SECONDS = 0.2
RETRY_SECONDS = 1.0
QUEUE_SIZE = 256


@dataclass(eq=False)
class _Subscriber:
    customer_id: str
    kind: type[Update]
    queue: asyncio.Queue[Update] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))

    def offer(self, update: Update) -> None:
        if self.queue.full():
            self.queue.get_nowait()
            log.warning("subscriber of %s too slow: an update dropped", self.customer_id)
        self.queue.put_nowait(update)


class Hub:
    def __init__(
        self,
        bus: EventBus,
        owners: Owners,
        *,
        streams: Sequence[str] = STREAMS,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self.bus = bus
        self.owners = owners
        self.streams = tuple(streams)
        self.poll_seconds = poll_seconds
        self._after: dict[str, str | None] = {}
        self._subscribers: dict[str, set[_Subscriber]] = {}

    @property
    def subscribers(self) -> int:
        return sum(len(subs) for subs in self._subscribers.values())

    async def start_at_head(self) -> None:
        """Remember each stream's last entry: the feeds start after it."""
        for stream in self.streams:
            after: str | None = None
            while True:
                page = await self.bus.read_all(stream, after=after, limit=PAGE)
                if page:
                    after = page[-1][0]
                if len(page) < PAGE:
                    break
            self._after[stream] = after

    async def updates(self, customer_id: str, kind: type[Update]) -> AsyncIterator[Update]:
        """The customer's updates of one kind, from now until the subscriber leaves."""
        subscriber = _Subscriber(customer_id, kind)
        self._subscribers.setdefault(customer_id, set()).add(subscriber)
        try:
            while True:
                yield await subscriber.queue.get()
        finally:
            subs = self._subscribers.get(customer_id)
            if subs is not None:
                subs.discard(subscriber)
                if not subs:
                    del self._subscribers[customer_id]

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                read = await self.poll()
            except asyncio.CancelledError:
                raise
            except Exception:  # the bus is down a moment: try again, never stop
                log.exception("portal subscriptions: reading the bus failed")
                read = 0
                await _sleep(stop, RETRY_SECONDS)
            if not read:
                await _sleep(stop, self.poll_seconds)

    async def poll(self) -> int:
        """One pass over the streams: fan out what was appended. The entries read."""
        read = 0
        for stream in self.streams:
            page = await self.bus.read_all(stream, after=self._after.get(stream), limit=PAGE)
            if page and not self._subscribers:
                # Nobody listens: the feed moves on undecoded (a fifth of the portal's
                # CPU on a busy day). A later subscriber's shipments and orders are
                # resolved from the orders API (``_resolve``), not from what was skipped.
                self._after[stream] = page[-1][0]
                read += len(page)
                continue
            for entry_id, _stream, event in page:
                self._after[stream] = entry_id
                for routed in updates_of(event):
                    await self._deliver(routed)
            read += len(page)
        return read

    async def _deliver(self, routed: Routed) -> None:
        update = routed.update
        if isinstance(update, ShipmentUpdate) and update.change is ShipmentChange.DISPATCHED:
            assert update.carrier is not None
            assert update.tracking_number is not None
            self.owners.remember_shipment(
                str(update.shipment_id), Carried(update.carrier, update.tracking_number)
            )
        if routed.customer_id is not None and routed.order_id:
            self.owners.remember_customer(routed.order_id, routed.customer_id)
        if not self._subscribers:
            return  # nobody listens: no order to resolve
        customer_id = routed.customer_id
        if customer_id is None:
            customer_id = await self._resolve(update, routed.order_id)
        for subscriber in tuple(self._subscribers.get(customer_id or "", ())):
            if isinstance(update, subscriber.kind):
                subscriber.offer(update)

    async def _resolve(self, update: Update, order_id: str) -> str | None:
        """The customer of a shipment's order, and the carrier the event left out."""
        if not isinstance(update, ShipmentUpdate) or update.carrier is not None:
            return await self.owners.customer_of(order_id)
        shipment_id = str(update.shipment_id)
        carried = self.owners.shipment(shipment_id)
        customer_id = await self.owners.customer_of(order_id, refresh=carried is None)
        carried = carried or self.owners.shipment(shipment_id)
        if carried is not None:
            update.carrier = carried.carrier
            update.tracking_number = carried.tracking_number
        return customer_id


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return
