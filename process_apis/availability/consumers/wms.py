"""Facts from the WMS (``tally.wms``) applied to the positions. Each handler runs in
the transaction that records the event in the inbox, so an event applies once.

All are ORDERED (picks, adjustments and returns are in consumers/wms_stock.py): the WMS numbers a warehouse's stock changes (subject
``warehouse:{id}``, sequence = its stock version), and positions apply them in that
order. A shipment that arrives before the receipt it draws on is parked until the
receipt has applied; a replay of an applied change is stale."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from process_apis.availability.allocations.shipments import apply_shipment
from process_apis.availability.consumers.wms_picks import on_put_away, on_shortage
from process_apis.availability.consumers.wms_stock import (
    on_adjusted,
    on_pick,
    on_return_dispositioned,
    on_return_received,
    release_external_picks,
)
from process_apis.availability.positions.ledger import (
    Cause,
    PositionKey,
    change,
    emit_replenished,
    ensure,
    locked_rows,
)
from shared.db import Tx
from shared.events.catalog import ReceiptPosted, decode_payload
from shared.events.envelope import Event
from shared.events.inbox import ApplyOnly, EventHandler

log = logging.getLogger("tally.availability")


async def on_receipt(tx: Tx, event: Event) -> None:
    """Received stock is physical stock: on_hand goes up at the warehouse and lot."""
    receipt = event.payload(ReceiptPosted)
    now = datetime.now(UTC)
    cause = Cause("receipt", event.source, receipt.receipt_id, event.id)
    received: dict[PositionKey, int] = {}
    for line in receipt.lines:
        if line.quantity <= 0:
            log.warning("receipt %s: ignoring a line of %d", receipt.receipt_id, line.quantity)
            continue
        key = PositionKey(line.sku, receipt.warehouse_id, line.lot or "")
        received[key] = received.get(key, 0) + line.quantity
    for key, quantity in sorted(received.items()):
        await ensure(tx.conn, key, now)
        if not await change(tx.conn, key, {"on_hand": quantity}, cause, now=now):
            raise RuntimeError(f"position {key} vanished while receiving")
    changes = [(key, {"on_hand": quantity}) for key, quantity in received.items()]
    emit_replenished(tx, changes, "receipt", causation=event)


async def on_shipment(tx: Tx, event: Event) -> None:
    await release_external_picks(tx, event)
    await apply_shipment(tx, event)


HANDLERS: dict[str, EventHandler] = {
    "receipt.posted": ApplyOnly(on_receipt),
    "pick.confirmed": ApplyOnly(on_pick),
    "shipment.dispatched": ApplyOnly(on_shipment),
    "inventory.adjusted": ApplyOnly(on_adjusted),
    "return.received": ApplyOnly(on_return_received),
    "return.dispositioned": ApplyOnly(on_return_dispositioned),
    "pick.put_away": ApplyOnly(on_put_away),
    "pick.shorted": ApplyOnly(on_shortage),
}
ORDERED_TYPES = frozenset(HANDLERS)  # stock changes apply in the warehouse's order


async def lock_positions_of_run(tx: Tx, events: Sequence[Event]) -> None:
    """A run's positions locked at its start, all in (sku, location, lot) order, as
    allocations and holds lock theirs: the handlers, each locking its own event's
    positions in the events' order, deadlocked with them on PostgreSQL (stop 36).
    SQLite's one writer takes no row locks: nothing to do there."""
    if tx.conn.dialect.name == "sqlite":
        return
    skus = {
        line.sku for event in events for line in getattr(decode_payload(event.data), "lines", ())
    }
    if skus:
        await locked_rows(tx.conn, sorted(skus))
