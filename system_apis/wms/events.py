"""The facts the WMS publishes (``tally.wms``), built from canonical records.

Stock-affecting facts (``receipt.posted``, ``pick.confirmed``, ``shipment.dispatched``,
``inventory.adjusted``, ``return.received``, ``return.dispositioned``) are events of the
warehouse's stock: subject ``warehouse:{warehouse_id}``, sequence = the warehouse's
stock version after the change (raised by one per change, in the same transaction), so
a consumer of positions applies them in the order the stock changed, parks a gap and
drops a replay. ``pick.put_away`` and ``pick.shorted`` are stock facts too (a
shortage raises the version twice: its ``inventory.adjusted`` moving stock to hold,
then the ``pick.shorted``). ``fulfillment.released`` is its fulfillment order's own
fact; ``shipment.delivered`` (sequence 2) and ``shipment.delayed`` (2 + its number)
are facts of the shipment (subject ``shipment:{id}``), which consumers take unordered.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from shared.events.catalog import (
    AdjustedLine,
    DispositionedLine,
    FulfillmentReleased,
    InventoryAdjusted,
    Line,
    PickConfirmed,
    PickPutAway,
    PickShorted,
    ReceiptPosted,
    ReturnDispositioned,
    ReturnReceived,
    ShipmentDelayed,
    ShipmentDelivered,
    ShipmentDispatched,
)
from shared.events.envelope import Event, new_event
from system_apis.wms.schemas import (
    Adjustment,
    Delay,
    DispositionLineIn,
    FulfillmentOrder,
    Pick,
    PutAway,
    Receipt,
    ReleaseLineIn,
    ReturnReceipt,
    Shipment,
    Shortage,
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
            asn_id=receipt.asn_id,
            purchase_order_id=receipt.purchase_order_id,
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
        rma_id=receipt.rma_id,
    )
    return _stock_event("return.received", receipt.warehouse_id, stock_version, payload)


def final_lines(lines: Sequence[DispositionLineIn | ReleaseLineIn]) -> list[DispositionedLine]:
    """The lines of a disposition or release that give units their final disposition
    (units kept in quality control are no fact of stock yet: left out)."""
    return [
        DispositionedLine(sku=x.sku, quantity=x.quantity, disposition=x.disposition, lot=x.lot)
        for x in lines
        if x.disposition != "quality_control"
    ]


def return_dispositioned(
    receipt: ReturnReceipt,
    lines: list[DispositionedLine],
    disposition_id: str,
    stock_version: int,
    *,
    released: bool = False,
) -> Event:
    """One disposition (or release, ``released``) call's final lines, named by its
    ``disposition_id``: the call raised the stock version once, so it is one event."""
    payload = ReturnDispositioned(
        return_id=receipt.return_id,
        order_id=receipt.order_id,
        warehouse_id=receipt.warehouse_id,
        lines=lines,
        rma_id=receipt.rma_id,
        disposition_id=disposition_id,
        released=released,
    )
    return _stock_event("return.dispositioned", receipt.warehouse_id, stock_version, payload)


def pick_put_away(put_away: PutAway, stock_version: int) -> Event:
    payload = PickPutAway(
        put_away_id=put_away.put_away_id,
        fulfillment_order_id=put_away.fulfillment_order_id,
        order_id=put_away.order_id,
        warehouse_id=put_away.warehouse_id,
        lines=_lines(put_away.lines),
    )
    return _stock_event("pick.put_away", put_away.warehouse_id, stock_version, payload)


def pick_shorted(shortage: Shortage, stock_version: int) -> Event:
    payload = PickShorted(
        shortage_id=shortage.shortage_id,
        fulfillment_order_id=shortage.fulfillment_order_id,
        order_id=shortage.order_id,
        warehouse_id=shortage.warehouse_id,
        lines=[Line(sku=line.sku, quantity=line.quantity) for line in shortage.lines],
    )
    return _stock_event("pick.shorted", shortage.warehouse_id, stock_version, payload)


def shipment_subject(shipment_id: str) -> str:
    return f"shipment:{shipment_id}"


def shipment_delivered(shipment: Shipment) -> Event:
    if shipment.delivered_at is None:
        raise ValueError(f"shipment {shipment.shipment_id} is not delivered")
    return new_event(
        source=SOURCE,
        type_="shipment.delivered",
        subject=shipment_subject(shipment.shipment_id),
        sequence=2,  # after shipment.dispatched, the shipment's first fact
        payload=ShipmentDelivered(
            shipment_id=shipment.shipment_id,
            fulfillment_order_id=shipment.fulfillment_order_id,
            order_id=shipment.order_id,
            warehouse_id=shipment.warehouse_id,
            delivered_at=shipment.delivered_at.isoformat(),
        ),
    )


def shipment_delayed(shipment: Shipment, delay: Delay) -> Event:
    return new_event(
        source=SOURCE,
        type_="shipment.delayed",
        subject=shipment_subject(shipment.shipment_id),
        sequence=2 + delay.number,
        payload=ShipmentDelayed(
            shipment_id=shipment.shipment_id,
            fulfillment_order_id=shipment.fulfillment_order_id,
            order_id=shipment.order_id,
            warehouse_id=shipment.warehouse_id,
            reason=delay.reason,
            promised_date=delay.promised_date.isoformat(),
            reported_at=delay.reported_at.isoformat(),
        ),
    )
