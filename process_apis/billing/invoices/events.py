"""Invoicing on ``shipment.dispatched``: one ERP invoice per shipment.

``prepare`` runs outside the inbox transaction and makes only idempotent calls: it reads
the order (unit prices, customer) from the orders API and issues the invoice in the ERP
with Idempotency-Key ``invoice:{shipment_id}``. Should the ERP already hold an invoice
for the shipment under another key (409 duplicate-invoice), that invoice is fetched.
``apply`` records the invoice locally (unique per shipment) and emits ``invoice.issued``
in the same transaction as the inbox row.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec

from process_apis.billing.invoices import repository as repo
from process_apis.billing.invoices.schemas import Invoice
from shared.db import Database, Tx
from shared.events.catalog import STREAM_BILLING, InvoiceIssued, ShipmentDispatched
from shared.events.catalog import Money as EventMoney
from shared.events.envelope import Event, new_event
from shared.http import Downstream

log = logging.getLogger("tally.billing.events")

EVENT_SOURCE = "tally.billing"
CONSUMER_GROUP = "billing"


class CannotInvoice(Exception):
    """The shipment cannot be invoiced (a partner's refusal or error): the event is
    redelivered with backoff and dead-lettered after the max deliveries, to be replayed
    once fixed. A partner that is unreachable (the 503 of ``Downstream``) is a wait
    instead, see ``shared.events.inbox.is_not_yet``."""


def _invoice(body: dict[str, Any]) -> Invoice:
    body = dict(body)
    body["issued_at"] = body.pop("created_at", None) or body.get("issued_at")
    return msgspec.convert(body, Invoice, strict=False)


class InvoiceOnShipment:
    def __init__(self, db: Database, orders: Downstream, erp: Downstream) -> None:
        self.db = db
        self.orders = orders
        self.erp = erp

    async def prepare(self, event: Event) -> Invoice | None:
        shipment: ShipmentDispatched = event.payload(ShipmentDispatched)
        async with self.db.read() as conn:
            if await repo.invoiced(conn, shipment.shipment_id):
                return None  # the same fact again under another event id
        response = await self.orders.request("GET", f"/orders/v1/orders/{shipment.order_id}")
        if response.status_code == 404:
            # Not an order of this platform (the WMS also fulfils for other systems):
            # nothing to invoice here, and retrying would not change that.
            log.error("shipment %s is for unknown order %s; not invoiced", *_ids(shipment))
            return None
        if not response.is_success:
            raise CannotInvoice(f"order {shipment.order_id}: orders API {response.status_code}")
        order = response.json()
        prices = {line["sku"]: line["unit_price"] for line in order["lines"]}
        unknown = [line.sku for line in shipment.lines if line.sku not in prices]
        if unknown:
            log.error(
                "shipment %s ships skus not on order %s (%s); not invoiced",
                *_ids(shipment),
                ", ".join(unknown),
            )
            return None
        lines = [
            {"sku": line.sku, "quantity": line.quantity, "unit_price": prices[line.sku]}
            for line in shipment.lines
            if line.quantity > 0
        ]
        if not lines:
            log.warning("shipment %s ships nothing; no invoice", shipment.shipment_id)
            return None
        response = await self.erp.request(
            "POST",
            "/erp/v1/invoices",
            json={
                "order_id": shipment.order_id,
                "shipment_id": shipment.shipment_id,
                "customer_id": order["customer_id"],
                "lines": lines,
            },
            idempotency_key=f"invoice:{shipment.shipment_id}",
        )
        if response.status_code in (200, 201):
            return _invoice(response.json())
        if response.status_code == 409 and _problem_type(response) == "/problems/duplicate-invoice":
            return await self._existing(shipment.order_id, shipment.shipment_id)
        raise CannotInvoice(
            f"shipment {shipment.shipment_id}: ERP answered {response.status_code} {response.text}"
        )

    async def _existing(self, order_id: str, shipment_id: str) -> Invoice:
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"order_id": order_id, "limit": 100}
            if cursor:
                params["cursor"] = cursor
            response = await self.erp.request("GET", "/erp/v1/invoices", params=params)
            if not response.is_success:
                raise CannotInvoice(f"listing ERP invoices of {order_id}: {response.status_code}")
            page = response.json()
            for item in page["items"]:
                if item["shipment_id"] == shipment_id:
                    return _invoice(item)
            cursor = page.get("next_cursor")
            if not cursor:
                raise CannotInvoice(
                    f"the ERP reports shipment {shipment_id} invoiced but lists none"
                )

    async def apply(self, tx: Tx, event: Event, prepared: Invoice | None) -> None:
        if prepared is None or not await repo.insert_invoice(tx.conn, prepared):
            return
        tx.emit(
            STREAM_BILLING,
            new_event(
                source=EVENT_SOURCE,
                type_="invoice.issued",
                subject=prepared.invoice_id,
                sequence=1,
                payload=InvoiceIssued(
                    invoice_id=prepared.invoice_id,
                    erp_invoice_id=prepared.invoice_id,
                    order_id=prepared.order_id,
                    shipment_id=prepared.shipment_id,
                    customer_id=prepared.customer_id,
                    total=EventMoney(prepared.total.amount_minor, prepared.total.currency),
                ),
                causation=event,
            ),
        )


def _ids(shipment: ShipmentDispatched) -> tuple[str, str]:
    return shipment.shipment_id, shipment.order_id


def _problem_type(response: Any) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("type") if isinstance(body, dict) else None
