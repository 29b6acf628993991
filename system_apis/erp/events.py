"""The facts the ERP publishes (``tally.erp``): purchase orders (subject
``purchase_order:{id}``, sequence = the PO's version), ASNs (subject ``asn:{id}``,
sequence 1 when shipped, 2 when received) and shipments' goods issues (subject
``goods_issue:{shipment_id}``, sequence 1)."""

from __future__ import annotations

from shared.events.catalog import (
    AsnReceived,
    AsnShipped,
    GoodsIssuePosted,
    Line,
    PurchaseOrderChanged,
    PurchaseOrderLine,
)
from shared.events.envelope import Event, new_event
from system_apis.erp.schemas import Asn, Posting, PurchaseOrder

SOURCE = "tally.erp"


def purchase_order_changed(order: PurchaseOrder, version: int) -> Event:
    return new_event(
        source=SOURCE,
        type_="purchase_order.changed",
        subject=f"purchase_order:{order.purchase_order_id}",
        sequence=version,
        payload=PurchaseOrderChanged(
            purchase_order_id=order.purchase_order_id,
            supplier_id=order.supplier_id,
            status=order.status,
            lines=[
                PurchaseOrderLine(
                    sku=line.sku,
                    warehouse_id=line.warehouse_id,
                    ordered=line.ordered,
                    open_quantity=line.open_quantity,
                    expected_date=line.expected_date.isoformat() if line.expected_date else None,
                )
                for line in order.lines
            ],
        ),
    )


def _lines(asn: Asn) -> list[Line]:
    return [Line(sku=line.sku, quantity=line.quantity) for line in asn.lines]


def asn_shipped(asn: Asn) -> Event:
    return new_event(
        source=SOURCE,
        type_="asn.shipped",
        subject=f"asn:{asn.asn_id}",
        sequence=1,
        payload=AsnShipped(
            asn_id=asn.asn_id,
            purchase_order_id=asn.purchase_order_id,
            warehouse_id=asn.warehouse_id,
            expected_date=asn.expected_date.isoformat(),
            lines=_lines(asn),
        ),
    )


def asn_received(asn: Asn) -> Event:
    return new_event(
        source=SOURCE,
        type_="asn.received",
        subject=f"asn:{asn.asn_id}",
        sequence=2,
        payload=AsnReceived(
            asn_id=asn.asn_id,
            purchase_order_id=asn.purchase_order_id,
            warehouse_id=asn.warehouse_id,
            receipt_id=asn.receipt_id or "",
            lines=_lines(asn),
        ),
    )


def goods_issue_posted(posting: Posting) -> Event:
    """A shipment's goods issue booked: what billing invoices on (decision 0045)."""
    return new_event(
        source=SOURCE,
        type_="goods_issue.posted",
        subject=f"goods_issue:{posting.reference}",
        sequence=1,
        payload=GoodsIssuePosted(
            posting_id=posting.posting_id,
            shipment_id=posting.reference,
            warehouse_id=posting.warehouse_id,
            lines=[Line(sku=line.sku, quantity=-line.quantity_delta) for line in posting.lines],
            posted_at=posting.posted_at.isoformat(),
            order_id=posting.order_id,
        ),
    )
