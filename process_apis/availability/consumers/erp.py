"""Facts from the ERP (``tally.erp``) applied to positions (lot ``''``: the ERP does
not know lots). Both kinds are ORDERED per subject: a purchase order's versions
(``purchase_order:{id}``), an ASN's shipped (1) then received (2) (``asn:{id}``).

- ``purchase_order.changed`` carries the whole PO: ``on_order`` moves by the
  difference between each line's open quantity now and what was last applied.
- ``asn.shipped`` raises ``incoming`` (kept per ASN line with its expected date);
  ``asn.received`` lowers it again (the WMS's receipt raises on_hand)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import delete, insert, select, update

from process_apis.availability.consumers.apply import Changes, add, apply_changes
from process_apis.availability.db import inbound_lines, purchase_order_lines_seen
from process_apis.availability.positions.ledger import Cause, PositionKey
from shared.db import Tx
from shared.events.catalog import AsnReceived, AsnShipped, PurchaseOrderChanged
from shared.events.envelope import Event
from shared.events.inbox import ApplyOnly, EventHandler

SEEN = purchase_order_lines_seen


async def on_purchase_order(tx: Tx, event: Event) -> None:
    order = event.payload(PurchaseOrderChanged)
    conn = tx.conn
    still_open = order.status == "open"
    now_open: dict[tuple[str, str], tuple[int, str | None]] = {}
    for line in order.lines:
        key = (line.sku, line.warehouse_id)
        quantity = max(0, line.open_quantity) if still_open else 0
        so_far = now_open.get(key, (0, None))[0]
        now_open[key] = (so_far + quantity, line.expected_date)
    rows = (
        await conn.execute(select(SEEN).where(SEEN.c.purchase_order_id == order.purchase_order_id))
    ).all()
    before = {(r.sku, r.location_id): int(r.open_quantity) for r in rows}
    changes: Changes = {}
    for sku, location in sorted(before.keys() | now_open.keys()):
        quantity = now_open.get((sku, location), (0, None))[0]
        add(changes, PositionKey(sku, location), on_order=quantity - before.get((sku, location), 0))
    await conn.execute(delete(SEEN).where(SEEN.c.purchase_order_id == order.purchase_order_id))
    if now_open:
        await conn.execute(
            insert(SEEN),
            [
                {
                    "purchase_order_id": order.purchase_order_id,
                    "sku": sku,
                    "location_id": location,
                    "open_quantity": quantity,
                    "expected_date": expected,
                }
                for (sku, location), (quantity, expected) in sorted(now_open.items())
            ],
        )
    cause = Cause("purchase_order", event.source, order.purchase_order_id, event.id)
    await apply_changes(conn, changes, cause, datetime.now(UTC))


async def on_asn_shipped(tx: Tx, event: Event) -> None:
    asn = event.payload(AsnShipped)
    quantities: dict[str, int] = {}
    for line in asn.lines:
        quantities[line.sku] = quantities.get(line.sku, 0) + max(0, line.quantity)
    changes: Changes = {}
    for sku, quantity in sorted(quantities.items()):
        add(changes, PositionKey(sku, asn.warehouse_id), incoming=quantity)
        await tx.conn.execute(
            insert(inbound_lines).values(
                asn_id=asn.asn_id,
                sku=sku,
                location_id=asn.warehouse_id,
                purchase_order_id=asn.purchase_order_id,
                quantity=quantity,
                expected_date=asn.expected_date,
                status="in_transit",
            )
        )
    cause = Cause("asn_shipped", event.source, asn.asn_id, event.id)
    await apply_changes(tx.conn, changes, cause, datetime.now(UTC))


async def on_asn_received(tx: Tx, event: Event) -> None:
    asn = event.payload(AsnReceived)
    rows = (
        await tx.conn.execute(
            select(inbound_lines).where(
                inbound_lines.c.asn_id == asn.asn_id, inbound_lines.c.status == "in_transit"
            )
        )
    ).all()
    changes: Changes = {}
    for row in rows:
        add(changes, PositionKey(row.sku, row.location_id), incoming=-int(row.quantity))
    await tx.conn.execute(
        update(inbound_lines).where(inbound_lines.c.asn_id == asn.asn_id).values(status="received")
    )
    cause = Cause("asn_received", event.source, asn.asn_id, event.id)
    await apply_changes(tx.conn, changes, cause, datetime.now(UTC))


HANDLERS: dict[str, EventHandler] = {
    "purchase_order.changed": ApplyOnly(on_purchase_order),
    "asn.shipped": ApplyOnly(on_asn_shipped),
    "asn.received": ApplyOnly(on_asn_received),
}
ORDERED_TYPES = frozenset(HANDLERS)
