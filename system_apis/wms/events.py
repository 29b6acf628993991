"""The facts the WMS publishes (``tally.wms``), built from canonical records.

Stock-affecting facts (``receipt.posted``, ``pick.confirmed``, ``shipment.dispatched``,
``inventory.adjusted``, ``return.received``, ``return.dispositioned``) are events of the
warehouse's stock: subject ``warehouse:{warehouse_id}``, sequence = the warehouse's
stock version after the change (raised by one per change, in the same transaction), so
a consumer of positions applies them in the order the stock changed, parks a gap and
drops a replay. ``fulfillment.released`` is its fulfillment order's own fact.
"""

from __future__ import annotations

import msgspec

from shared.events.catalog import (
    AdjustedLine,
    DispositionedLine,
    FulfillmentReleased,
    InventoryAdjusted,
    Line,
    PickConfirmed,
    ReceiptPosted,
    ReturnDispositioned,
    ReturnReceived,
    ShipmentDispatched,
)
from shared.events.envelope import Event, new_event
from system_apis.wms.schemas import (
    Adjustment,
    DispositionIn,
    FulfillmentOrder,
    Pick,
    Receipt,
    ReturnReceipt,
    Shipment,
    StockLine,
)

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


def _stock_event(
    type_: str, warehouse_id: str, stock_version: int, payload: msgspec.Struct
) -> Event:
    return new_event(
        source=SOURCE,
        type_=type_,
        subject=warehouse_subject(warehouse_id),
        sequence=stock_version,
        payload=payload,
    )


def pick_confirmed(pick: Pick, stock_version: int) -> Event:
    payload = PickConfirmed(
        pick_id=pick.pick_id,
        fulfillment_order_id=pick.fulfillment_order_id,
        order_id=pick.order_id,
        warehouse_id=pick.warehouse_id,
        lines=_lines(pick.lines),
    )
    return _stock_event("pick.confirmed", pick.warehouse_id, stock_version, payload)


def inventory_adjusted(adjustment: Adjustment, stock_version: int) -> Event:
    payload = InventoryAdjusted(
        adjustment_id=adjustment.adjustment_id,
        warehouse_id=adjustment.warehouse_id,
        reason=adjustment.reason,
        lines=[
            AdjustedLine(
                sku=line.sku, quantity_delta=line.quantity_delta, status=line.status, lot=line.lot
            )
            for line in adjustment.lines
        ],
    )
    return _stock_event("inventory.adjusted", adjustment.warehouse_id, stock_version, payload)


def return_received(receipt: ReturnReceipt, stock_version: int) -> Event:
    payload = ReturnReceived(
        return_id=receipt.return_id,
        order_id=receipt.order_id,
        warehouse_id=receipt.warehouse_id,
        lines=[Line(sku=line.sku, quantity=line.quantity, lot=line.lot) for line in receipt.lines],
    )
    return _stock_event("return.received", receipt.warehouse_id, stock_version, payload)


def return_dispositioned(
    receipt: ReturnReceipt, disposition: DispositionIn, stock_version: int
) -> Event:
    payload = ReturnDispositioned(
        return_id=receipt.return_id,
        order_id=receipt.order_id,
        warehouse_id=receipt.warehouse_id,
        lines=[
            DispositionedLine(
                sku=line.sku, quantity=line.quantity, disposition=line.disposition, lot=line.lot
            )
            for line in disposition.lines
        ],
    )
    return _stock_event("return.dispositioned", receipt.warehouse_id, stock_version, payload)
