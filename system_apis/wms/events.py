"""The facts the WMS publishes (``tally.wms``), built from canonical records.

Stock-affecting facts (``receipt.posted``, ``shipment.dispatched``) are events of the
warehouse's stock: subject ``warehouse:{warehouse_id}``, sequence = the warehouse's
stock version after the change (raised by one per change, in the same transaction), so
a consumer of positions applies them in the order the stock changed, parks a gap and
drops a replay. ``fulfillment.released`` is its fulfillment order's own fact.
"""

from __future__ import annotations

from shared.events.catalog import (
    FulfillmentReleased,
    Line,
    ReceiptPosted,
    ShipmentDispatched,
)
from shared.events.envelope import Event, new_event
from system_apis.wms.schemas import FulfillmentOrder, Receipt, Shipment, StockLine

SOURCE = "tally.wms"


def warehouse_subject(warehouse_id: str) -> str:
    return f"warehouse:{warehouse_id}"


def _lines(lines: list[StockLine]) -> list[Line]:
    return [Line(sku=line.sku, quantity=line.quantity, lot=line.lot) for line in lines]


def receipt_posted(receipt: Receipt, stock_version: int) -> Event:
    return new_event(
        source=SOURCE,
        type_="receipt.posted",
        subject=warehouse_subject(receipt.warehouse_id),
        sequence=stock_version,
        payload=ReceiptPosted(
            receipt_id=receipt.receipt_id,
            warehouse_id=receipt.warehouse_id,
            lines=_lines(receipt.lines),
        ),
    )


def fulfillment_released(order: FulfillmentOrder) -> Event:
    return new_event(
        source=SOURCE,
        type_="fulfillment.released",
        subject=order.fulfillment_order_id,
        sequence=1,
        payload=FulfillmentReleased(
            fulfillment_order_id=order.fulfillment_order_id,
            order_id=order.order_id,
            warehouse_id=order.warehouse_id,
            lines=[Line(sku=line.sku, quantity=line.quantity) for line in order.lines],
        ),
    )


def shipment_dispatched(shipment: Shipment, stock_version: int) -> Event:
    return new_event(
        source=SOURCE,
        type_="shipment.dispatched",
        subject=warehouse_subject(shipment.warehouse_id),
        sequence=stock_version,
        payload=ShipmentDispatched(
            shipment_id=shipment.shipment_id,
            fulfillment_order_id=shipment.fulfillment_order_id,
            order_id=shipment.order_id,
            warehouse_id=shipment.warehouse_id,
            carrier=shipment.carrier,
            tracking_number=shipment.tracking_number,
            lines=_lines(shipment.lines),
        ),
    )
