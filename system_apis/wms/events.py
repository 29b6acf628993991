"""The facts the WMS publishes (``tally.wms``), built from canonical records."""

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


def _lines(lines: list[StockLine]) -> list[Line]:
    return [Line(sku=line.sku, quantity=line.quantity, lot=line.lot) for line in lines]


def receipt_posted(receipt: Receipt) -> Event:
    return new_event(
        source=SOURCE,
        type_="receipt.posted",
        subject=receipt.receipt_id,
        sequence=1,
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


def shipment_dispatched(shipment: Shipment) -> Event:
    return new_event(
        source=SOURCE,
        type_="shipment.dispatched",
        subject=shipment.shipment_id,
        sequence=1,
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
