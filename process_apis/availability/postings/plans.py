"""Which ERP posting each WMS fact makes: pure functions of the event's payload.

The ERP's on-hand per (sku, warehouse) must equal the WMS's, where on_hand counts every
status (available, quality_control, damaged, hold) and what is picked: a status move
nets to zero and is no financial movement; a scrap or return to vendor leaves the
building. Lots are summed away (the ERP knows none)."""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from shared.events.catalog import (
    InventoryAdjusted,
    ReceiptPosted,
    ReturnDispositioned,
    ReturnReceived,
    ShipmentDispatched,
)
from shared.events.envelope import Event

LEAVES_THE_BUILDING = ("scrap", "return_to_vendor")


class Plan(msgspec.Struct, frozen=True):
    """The body of ``POST /erp/v1/inventory/postings``, less the nulls."""

    kind: str
    reference: str
    warehouse_id: str
    lines: list[tuple[str, int]]  # (sku, quantity_delta), never 0, one per sku
    asn_id: str | None = None
    purchase_order_id: str | None = None
    order_id: str | None = None  # a goods issue's sales order: billing invoices on it

    @property
    def idempotency_key(self) -> str:
        # A goods issue naming its order is another body than the one posted before
        # order ids were passed: another key, so that a retry across the upgrade meets
        # the ERP's 409 duplicate-posting (posted) instead of a key reused.
        if self.order_id:
            return f"posting:{self.kind}:{self.reference}:{self.order_id}"
        return f"posting:{self.kind}:{self.reference}"

    def body(self) -> dict[str, object]:
        body: dict[str, object] = {
            "kind": self.kind,
            "reference": self.reference,
            "warehouse_id": self.warehouse_id,
            "lines": [{"sku": sku, "quantity_delta": delta} for sku, delta in self.lines],
        }
        if self.asn_id:
            body["asn_id"] = self.asn_id
        if self.purchase_order_id:
            body["purchase_order_id"] = self.purchase_order_id
        if self.order_id:
            body["order_id"] = self.order_id
        return body


def net(pairs: Iterable[tuple[str, int]], sign: int = 1) -> list[tuple[str, int]]:
    """Deltas summed per sku (sorted), times ``sign``; a sku netting to 0 is dropped."""
    totals: dict[str, int] = {}
    for sku, delta in pairs:
        totals[sku] = totals.get(sku, 0) + delta * sign
    return [(sku, delta) for sku, delta in sorted(totals.items()) if delta]


def _plan(
    kind: str, reference: str, warehouse_id: str, lines: list[tuple[str, int]]
) -> Plan | None:
    return Plan(kind, reference, warehouse_id, lines) if lines else None


def receipt(event: Event) -> Plan | None:
    fact = event.payload(ReceiptPosted)
    lines = net((line.sku, line.quantity) for line in fact.lines)
    if not lines:
        return None
    return Plan(
        "goods_receipt",
        fact.receipt_id,
        fact.warehouse_id,
        lines,
        # Passed through: the ERP receives the ASN (its PO lines with it), or else
        # receives against the PO's open lines.
        asn_id=fact.asn_id,
        purchase_order_id=fact.purchase_order_id,
    )


def shipment(event: Event) -> Plan | None:
    fact = event.payload(ShipmentDispatched)
    lines = net(((line.sku, line.quantity) for line in fact.lines), sign=-1)
    if not lines:
        return None
    return Plan("goods_issue", fact.shipment_id, fact.warehouse_id, lines, order_id=fact.order_id)


def return_receipt(event: Event) -> Plan | None:
    fact = event.payload(ReturnReceived)
    lines = net((line.sku, line.quantity) for line in fact.lines)
    return _plan("return_receipt", fact.return_id, fact.warehouse_id, lines)


def scrap(event: Event) -> Plan | None:
    """Scrapped and returned-to-vendor units leave on_hand; restocked and damaged ones
    stay in it (damaged is a status of stock still in the building). The posting is
    the disposition's (``disposition_id``: a return dispositioned in several calls, or
    released from quality control later, posts each); events from before it existed
    name the return (``{return_id}-scrap``)."""
    fact = event.payload(ReturnDispositioned)
    gone = ((x.sku, x.quantity) for x in fact.lines if x.disposition in LEAVES_THE_BUILDING)
    lines = net(gone, sign=-1)
    reference = fact.disposition_id or f"{fact.return_id}-scrap"
    return _plan("scrap", reference, fact.warehouse_id, lines)


def adjustment(event: Event) -> Plan | None:
    """The net on-hand change per sku: every status is part of on_hand, so a move
    between statuses (available -> hold) nets to zero and posts nothing."""
    fact = event.payload(InventoryAdjusted)
    lines = net((line.sku, line.quantity_delta) for line in fact.lines)
    return _plan("adjustment", fact.adjustment_id, fact.warehouse_id, lines)
