"""Events of the orders API: what it emits (source ``tally.orders``, sequence = the
order's version) and the WMS facts it consumes (``shipment.dispatched``)."""

from __future__ import annotations

import logging

from process_apis.order_to_ship.orders import repository as repo
from shared.db import Tx
from shared.events.catalog import STREAM_ORDERS, OrderStatusChanged, ShipmentDispatched
from shared.events.envelope import Event, new_event
from shared.events.inbox import ApplyOnly, EventHandler, NotYet

log = logging.getLogger("tally.orders.events")

EVENT_SOURCE = "tally.orders"
CONSUMER_GROUP = "order_to_ship"


class OrderStillPending(NotYet):
    """A shipment for an order whose placement has not completed: redeliver later (a
    wait, not a failure: it does not count toward the dead letters' max deliveries)."""


async def on_shipment_dispatched(tx: Tx, event: Event) -> None:
    shipment: ShipmentDispatched = event.payload(ShipmentDispatched)
    order = await repo.get(tx.conn, shipment.order_id)
    if order is None:
        log.warning(
            "shipment %s is for unknown order %s; ignored",
            shipment.shipment_id,
            shipment.order_id,
        )
        return
    if order.status == "pending":
        raise OrderStillPending(shipment.order_id)
    known = {line.sku for line in order.lines}
    lines = [(line.sku, line.quantity) for line in shipment.lines if line.sku in known]
    if len(lines) != len(shipment.lines):
        log.warning(
            "shipment %s carries skus not on order %s", shipment.shipment_id, order.order_id
        )
    added = await repo.add_shipment(
        tx.conn,
        order_id=order.order_id,
        shipment_id=shipment.shipment_id,
        fulfillment_order_id=shipment.fulfillment_order_id,
        warehouse_id=shipment.warehouse_id,
        carrier=shipment.carrier,
        tracking_number=shipment.tracking_number,
        lines=lines,
        shipped_at=event.time,
    )
    if not added:
        return
    updated = await repo.get(tx.conn, order.order_id)
    assert updated is not None
    status = order.status
    if status != "cancelled":  # a shipment after a cancel is recorded, the cancel stands
        complete = all(line.shipped >= line.quantity for line in updated.lines)
        status = "shipped" if complete else "partially_shipped"
    await repo.set_status(tx.conn, order.order_id, status)
    if status != order.status:
        tx.emit(
            STREAM_ORDERS,
            new_event(
                source=EVENT_SOURCE,
                type_="order.status_changed",
                subject=order.order_id,
                sequence=updated.version + 1,
                payload=OrderStatusChanged(
                    order_id=order.order_id,
                    customer_id=order.customer_id,
                    status=status,
                    previous_status=order.status,
                ),
                causation=event,
            ),
        )


HANDLERS: dict[str, EventHandler] = {"shipment.dispatched": ApplyOnly(on_shipment_dispatched)}
# UNORDERED: the WMS numbers shipment.dispatched per warehouse (its stock version), but
# an order's shipments commute (each is recorded once, by shipment id, and the status
# follows from the shipped totals), so they are deduplicated by event id only.
ORDERED_TYPES: frozenset[str] = frozenset()
