"""The warehouse's and billing's facts that move an order (decision 0026): picks,
put-aways, shortages, shipments, deliveries and carrier delays from the WMS, invoices
from billing. Each applies to the order's lines under their invariants and moves the
status through the transition table; each is applied once (shipments by shipment id,
put-aways and shortages by document id, invoices by the shipment they bill).

All are UNORDERED (deduplicated by event id): the WMS numbers its stock events per
warehouse, not per order, and these facts commute on the lines; a fact that needs an
earlier one (a delivery before its shipment was recorded) waits with ``NotYet``, but
for an invoice: billing often answers the WMS's shipment before this service has
applied it, so an early invoice is kept (``early_invoices``) and applied with its
shipment, instead of parked and redelivered until then (decision 0056)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, delete, select

from process_apis.order_to_ship.db import early_invoices, orders
from process_apis.order_to_ship.flows import changes
from process_apis.order_to_ship.flows.partners import Partners
from process_apis.order_to_ship.lifecycle.lines import QuantityRefused
from process_apis.order_to_ship.lifecycle.states import TERMINAL
from process_apis.order_to_ship.orders import repository as repo
from shared.db import Database, Tx
from shared.events.catalog import (
    InvoiceIssued,
    PickConfirmed,
    PickPutAway,
    PickShorted,
    ShipmentDelayed,
    ShipmentDelivered,
    ShipmentDispatched,
)
from shared.events.envelope import Event
from shared.events.inbox import ApplyOnly, EventHandler, NotYet

log = logging.getLogger("tally.orders.warehouse")


class OrderNotSettled(NotYet):
    """A fact for an order still being placed, or that needs an earlier fact first."""


async def _working(tx: Tx, order_id: str, what: str) -> repo.Working | None:
    working = await repo.lock(tx, order_id)
    if working is None:
        # Not an order of this platform (the WMS also fulfils for other systems).
        log.warning("%s for unknown order %s; ignored", what, order_id)
        return None
    if working.status == "pending":
        raise OrderNotSettled(order_id)
    return working


async def on_shipment_dispatched(tx: Tx, event: Event) -> None:
    shipment = event.payload(ShipmentDispatched)
    if await repo.shipment(tx.conn, shipment.shipment_id) is not None:
        return
    working = await _working(tx, shipment.order_id, f"shipment {shipment.shipment_id}")
    if working is None:
        return
    shipped: dict[str, int] = {}
    for line in shipment.lines:
        if line.sku in working.lines and line.quantity > 0:
            shipped[line.sku] = shipped.get(line.sku, 0) + line.quantity
    for sku, quantity in shipped.items():
        ordered = working.line(sku)
        if quantity > ordered.released - ordered.shipped and ordered.unreleased > 0:
            # The warehouse shipped units whose release this order has not recorded
            # yet (the WMS took the release; its answer is still on the way back): the
            # shipment applies once the release is recorded, not as a lost race.
            raise OrderNotSettled(
                f"shipment {shipment.shipment_id}: {sku} {quantity} before its release"
            )
    await repo.add_shipment(
        tx.conn,
        shipment_id=shipment.shipment_id,
        order_id=working.order_id,
        fulfillment_order_id=shipment.fulfillment_order_id,
        warehouse_id=shipment.warehouse_id,
        carrier=shipment.carrier,
        tracking_number=shipment.tracking_number,
        lines=[{"sku": sku, "quantity": q} for sku, q in sorted(shipped.items())],
        shipped_at=event.time,
    )
    try:
        for sku, quantity in sorted(shipped.items()):
            working.line(sku).ship(quantity)
    except QuantityRefused as exc:
        # Shipped after the order released those units (a cancel that lost the race
        # with the dock): recorded above for the books, the lines keep their bounds.
        log.error(
            "shipment %s does not fit order %s: %s", shipment.shipment_id, working.order_id, exc
        )
        working.touched.clear()
        await changes.commit(
            tx, working, "shipment_recorded", status=working.status, causation=event
        )
    else:
        await changes.commit(tx, working, "shipped", causation=event)
    await _invoice_early(tx, shipment.shipment_id, working.order_id, event)


async def on_pick_confirmed(tx: Tx, event: Event) -> None:
    pick = event.payload(PickConfirmed)
    working = await _working(tx, pick.order_id, f"pick {pick.pick_id}")
    if working is None:
        return
    try:
        for line in pick.lines:
            if line.sku in working.lines and line.quantity > 0:
                working.line(line.sku).pick(line.quantity)
    except QuantityRefused as exc:
        if working.status in TERMINAL:
            # Picked for an order cancelled meanwhile (its units were put back).
            log.warning("pick %s for ended order %s: %s", pick.pick_id, working.order_id, exc)
            return
        raise OrderNotSettled(
            f"pick {pick.pick_id} before its release was recorded: {exc}"
        ) from exc
    await changes.commit(tx, working, "picked", causation=event)


async def on_pick_put_away(tx: Tx, event: Event) -> None:
    put_away = event.payload(PickPutAway)
    if await changes.document_applied(tx, put_away.put_away_id, put_away.order_id):
        return
    working = await _working(tx, put_away.order_id, f"put-away {put_away.put_away_id}")
    if working is None:
        return
    for line in put_away.lines:
        if line.sku in working.lines and line.quantity > 0:
            line_quantities = working.line(line.sku)
            line_quantities.put_away(min(line.quantity, line_quantities.picked))
    await changes.commit(tx, working, "put_away", causation=event)


class ShortPick:
    """A short pick: the missing units leave the order's allocation at that warehouse
    (``prepare``: availability's line release, keyed by the shortage) and are
    backordered again (availability keeps them wanted, so a later fill finds them), or
    cancelled for an order whose policy is ``reject``."""

    def __init__(self, db: Database, partners: Partners) -> None:
        self.db = db
        self.partners = partners

    async def prepare(self, event: Event) -> None:
        shortage = event.payload(PickShorted)
        async with self.db.lookup() as conn:
            policy = await conn.scalar(
                select(orders.c.policy).where(orders.c.order_id == shortage.order_id)
            )
        if policy is None:
            return  # not an order of this platform: apply ignores it too
        lines = [
            {
                "sku": line.sku,
                "release": line.quantity,
                "backorder": line.quantity if policy != "reject" else 0,
                "location_id": shortage.warehouse_id,
            }
            for line in shortage.lines
            if line.quantity > 0
        ]
        if lines:
            await self.partners.release_lines(
                shortage.order_id,
                f"short:{shortage.shortage_id}",
                {"reason": "short_pick", "lines": lines},
            )

    async def apply(self, tx: Tx, event: Event, prepared: Any) -> None:  # noqa: ARG002
        shortage = event.payload(PickShorted)
        if await changes.document_applied(tx, shortage.shortage_id, shortage.order_id):
            return
        working = await _working(tx, shortage.order_id, f"shortage {shortage.shortage_id}")
        if working is None:
            return
        backorder = str(working.head.policy) != "reject"
        for line in shortage.lines:
            if line.sku in working.lines and line.quantity > 0:
                working.line(line.sku).withdraw(line.quantity, backorder=backorder)
        cause = "short_pick_backordered" if backorder else "short_pick_cancelled"
        await changes.commit(tx, working, cause, causation=event)


async def _recorded_shipment(tx: Tx, shipment_id: str) -> Any:
    row = await repo.shipment(tx.conn, shipment_id)
    if row is None:
        raise OrderNotSettled(f"shipment {shipment_id} is not recorded yet")
    return row


async def on_shipment_delivered(tx: Tx, event: Event) -> None:
    delivered = event.payload(ShipmentDelivered)
    row = await _recorded_shipment(tx, delivered.shipment_id)
    if row.delivered_at is not None:
        return
    working = await _working(tx, row.order_id, f"delivery {delivered.shipment_id}")
    if working is None:
        return
    await repo.update_shipment(
        tx.conn, delivered.shipment_id, delivered_at=datetime.fromisoformat(delivered.delivered_at)
    )
    for line in row.lines:
        working.line(str(line["sku"])).deliver(int(line["quantity"]))
    await changes.commit(tx, working, "delivered", causation=event)


async def on_shipment_delayed(tx: Tx, event: Event) -> None:
    delayed = event.payload(ShipmentDelayed)
    row = await _recorded_shipment(tx, delayed.shipment_id)
    reported = datetime.fromisoformat(delayed.reported_at)
    if row.delivered_at is not None or (
        row.delay_reported_at is not None and row.delay_reported_at >= reported
    ):
        return  # delivered already, or a newer promise is known
    await repo.update_shipment(
        tx.conn,
        delayed.shipment_id,
        promised_date=delayed.promised_date,
        delay_reason=delayed.reason,
        delay_reported_at=reported,
    )


_TAKE_EARLY_INVOICE = (
    delete(early_invoices)
    .where(early_invoices.c.shipment_id == bindparam("at_shipment"))
    .returning(early_invoices.c.invoice_id)
)


async def on_invoice_issued(tx: Tx, event: Event) -> None:
    invoice = event.payload(InvoiceIssued)
    # The order's lock first: a shipment being recorded holds it, so this either sees
    # the shipment or leaves the invoice where the shipment's handler looks after it.
    working = await _working(tx, invoice.order_id, f"invoice {invoice.invoice_id}")
    if working is None:
        return
    row = await repo.shipment(tx.conn, invoice.shipment_id)
    if row is None:
        # Kept for its shipment: a park here came back every few seconds for as long as
        # this service ran behind the WMS, each a transaction of its own (decision 0056).
        await tx.conn.execute(
            changes.upsert(tx, early_invoices)
            .values(
                shipment_id=invoice.shipment_id,
                invoice_id=invoice.invoice_id,
                received_at=datetime.now(UTC),
            )
            .on_conflict_do_nothing()
        )
        return
    await _invoice(tx, working, row, event)


async def _invoice_early(tx: Tx, shipment_id: str, order_id: str, causation: Event) -> None:
    """The invoice that came before this shipment was recorded, if one did."""
    taken = await tx.conn.execute(_TAKE_EARLY_INVOICE, {"at_shipment": shipment_id})
    if taken.scalar() is None:
        return
    working = await _working(tx, order_id, f"invoice of shipment {shipment_id}")
    if working is not None:
        await _invoice(tx, working, await repo.shipment(tx.conn, shipment_id), causation)


async def _invoice(tx: Tx, working: repo.Working, row: Any, causation: Event) -> None:
    if row.invoiced:
        return
    await repo.update_shipment(tx.conn, row.shipment_id, invoiced=1)
    for line in row.lines:
        working.line(str(line["sku"])).invoice(int(line["quantity"]))
    await changes.commit(tx, working, "invoiced", causation=causation)


def handlers(db: Database, partners: Partners) -> dict[str, EventHandler]:
    return {
        "shipment.dispatched": ApplyOnly(on_shipment_dispatched),
        "pick.confirmed": ApplyOnly(on_pick_confirmed),
        "pick.put_away": ApplyOnly(on_pick_put_away),
        "pick.shorted": ShortPick(db, partners),
        "shipment.delivered": ApplyOnly(on_shipment_delivered),
        "shipment.delayed": ApplyOnly(on_shipment_delayed),
        "invoice.issued": ApplyOnly(on_invoice_issued),
    }
