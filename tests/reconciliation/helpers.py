"""WMS and ERP facts for the availability consumer tests, numbered explicitly."""

from __future__ import annotations

from typing import Any

import uuid_utils

from shared.events.catalog import (
    AdjustedLine,
    AsnReceived,
    AsnShipped,
    DispositionedLine,
    InventoryAdjusted,
    Line,
    PickConfirmed,
    PurchaseOrderChanged,
    PurchaseOrderLine,
    ReturnDispositioned,
    ReturnReceived,
)
from shared.events.envelope import Event
from tests.support.events import erp_event, receipt_posted, shipment_dispatched, wms_event


def receipt(seq: int, wh: str, lines: list[tuple[str, int, str | None]]) -> Event:
    return receipt_posted(wh, lines, sequence=seq)


def shipment(seq: int, order_id: str, wh: str, lines: list[tuple[str, int, str | None]]) -> Event:
    return shipment_dispatched(order_id, wh, lines, sequence=seq)


def pick(seq: int, order_id: str, wh: str, lines: list[tuple[str, int, str | None]]) -> Event:
    payload = PickConfirmed(
        pick_id=f"PCK-{uuid_utils.uuid7()}",
        fulfillment_order_id=f"FO-{order_id}",
        order_id=order_id,
        warehouse_id=wh,
        lines=[Line(sku=s, quantity=q, lot=lot) for s, q, lot in lines],
    )
    return wms_event("pick.confirmed", wh, payload, sequence=seq)


def adjusted(
    seq: int, wh: str, reason: str, lines: list[tuple[str, int, str, str | None]]
) -> Event:
    payload = InventoryAdjusted(
        adjustment_id=f"ADJ-{uuid_utils.uuid7()}",
        warehouse_id=wh,
        reason=reason,
        lines=[
            AdjustedLine(sku=s, quantity_delta=d, status=st, lot=lot)  # type: ignore[arg-type]
            for s, d, st, lot in lines
        ],
    )
    return wms_event("inventory.adjusted", wh, payload, sequence=seq)


def return_received(seq: int, wh: str, return_id: str, lines: list[tuple[str, int]]) -> Event:
    payload = ReturnReceived(
        return_id=return_id,
        order_id="SO-R",
        warehouse_id=wh,
        lines=[Line(sku=s, quantity=q) for s, q in lines],
    )
    return wms_event("return.received", wh, payload, sequence=seq)


def return_dispositioned(
    seq: int, wh: str, return_id: str, lines: list[tuple[str, int, str]]
) -> Event:
    payload = ReturnDispositioned(
        return_id=return_id,
        order_id="SO-R",
        warehouse_id=wh,
        lines=[
            DispositionedLine(sku=s, quantity=q, disposition=d)  # type: ignore[arg-type]
            for s, q, d in lines
        ],
    )
    return wms_event("return.dispositioned", wh, payload, sequence=seq)


def po_changed(
    po_id: str, version: int, lines: list[tuple[str, str, int]], status: str = "open"
) -> Event:
    payload = PurchaseOrderChanged(
        purchase_order_id=po_id,
        supplier_id="SUP-1",
        status=status,
        lines=[
            PurchaseOrderLine(
                sku=s, warehouse_id=wh, ordered=10, open_quantity=q, expected_date="2030-01-15"
            )
            for s, wh, q in lines
        ],
    )
    return erp_event("purchase_order.changed", f"purchase_order:{po_id}", payload, sequence=version)


def asn_shipped(asn_id: str, po_id: str, wh: str, lines: list[tuple[str, int]]) -> Event:
    payload = AsnShipped(
        asn_id=asn_id,
        purchase_order_id=po_id,
        warehouse_id=wh,
        expected_date="2030-01-10",
        lines=[Line(sku=s, quantity=q) for s, q in lines],
    )
    return erp_event("asn.shipped", f"asn:{asn_id}", payload, sequence=1)


def asn_received(asn_id: str, po_id: str, wh: str, lines: list[tuple[str, int]]) -> Event:
    payload = AsnReceived(
        asn_id=asn_id,
        purchase_order_id=po_id,
        warehouse_id=wh,
        receipt_id="RCV-1",
        lines=[Line(sku=s, quantity=q) for s, q in lines],
    )
    return erp_event("asn.received", f"asn:{asn_id}", payload, sequence=2)


def buckets(item: dict[str, Any], location: str, *names: str) -> tuple[int, ...]:
    """The named buckets of one location (empty while the location is unknown)."""
    found = [loc for loc in item["locations"] if loc["location_id"] == location]
    return tuple(found[0][name] for name in names) if found else ()
