"""Invoicing on ``goods_issue.posted``: one ERP invoice per shipment, with its tax.

The ERP invoices only what it has seen leave the warehouse, so billing waits for the
ERP's own fact that a shipment's goods issue is booked (decision 0045) rather than for
the WMS's ``shipment.dispatched``, which reaches billing before availability has posted
the goods issue (the ERP's 409 ``shipment-not-posted``, a wasted call and a park, on
about half the shipments). A ``shipment.dispatched`` from before this process started
is still invoiced on: its goods issue may have been posted before the ERP announced
goods issues. Either fact of a shipment invoices it once (key ``invoice:{shipment_id}``).

``prepare`` runs outside the inbox transaction and makes only idempotent calls: it reads
the order (unit prices, customer, ship-to region) from the orders API and the items'
tax classes from the ERP (cached), asks the tax calculator for each line's tax, and
issues the invoice in the ERP with Idempotency-Key ``invoice:{shipment_id}``. Should
the ERP already hold an invoice for the shipment under another key (409
duplicate-invoice), that invoice is fetched. The ERP invoices only what it has seen
leave the warehouse for a booked order: its 409 ``shipment-not-posted`` or
``order-not-booked`` is a wait (``NotYet``), not a failure.
``apply`` records the invoice locally (unique per shipment) and emits ``invoice.issued``
in the same transaction as the inbox row. The shipments of one bus batch are invoiced
together (``prepare_many``: one ``POST /erp/v1/invoices/batch``).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec

from process_apis.billing.erp import read_all
from process_apis.billing.invoices import repository as repo
from process_apis.billing.invoices.mirror import EVENT_SOURCE, issued_event
from process_apis.billing.invoices.schemas import Invoice, from_erp
from process_apis.billing.tax.calculator import TaxCalculator, TaxLine
from process_apis.billing.tax.classes import ItemTaxClasses
from shared.db import Database, Tx
from shared.events.catalog import (
    STREAM_BILLING,
    GoodsIssuePosted,
    Line,
    ShipmentDispatched,
)
from shared.events.envelope import Event
from shared.events.inbox.handlers import NotYet
from shared.http import Downstream

log = logging.getLogger("tally.billing.events")

CONSUMER_GROUP = "billing"
PLACED_ORDERS_KEPT = 20_000  # orders whose shipments are still being invoiced
ORDERS_PER_READ = 100  # the orders API's batch read by ids takes up to 100
# The ERP's answers that mean "not yet": the goods issue of the shipment or the sales
# order is still on its way to the ERP (availability's postings, orders' ERP sync).
WAITS = {"/problems/shipment-not-posted", "/problems/order-not-booked"}
INVOICES_PATH = "/erp/v1/invoices"

__all__ = ["CONSUMER_GROUP", "EVENT_SOURCE", "CannotInvoice", "InvoiceOnShipment"]


class CannotInvoice(Exception):
    """The shipment cannot be invoiced (a partner's refusal or error): the event is
    redelivered with backoff and dead-lettered after the max deliveries, to be replayed
    once fixed. A partner that is unreachable (the 503 of ``Downstream``) is a wait
    instead, see ``shared.events.inbox.is_not_yet``."""


@dataclass(frozen=True, slots=True)
class Shipped:
    """What an invoice takes from the fact that a shipment left."""

    shipment_id: str
    order_id: str
    lines: list[Line]


@dataclass(frozen=True, slots=True)
class PlacedOrder:
    """What an invoice takes from its order."""

    customer_id: str
    currency: str | None
    region: str | None
    prices: dict[str, Any]  # sku -> unit price (money)


class InvoiceOnShipment:
    def __init__(
        self,
        db: Database,
        orders: Downstream,
        erp: Downstream,
        tax: TaxCalculator,
        classes: ItemTaxClasses,
    ) -> None:
        self.db = db
        self.orders = orders
        self.erp = erp
        self.tax = tax
        self.classes = classes
        self._placed: OrderedDict[str, PlacedOrder] = OrderedDict()
        self.started = datetime.now(UTC)

    def shipped(self, event: Event) -> Shipped | None:
        """The shipment an event invoices; None when it invoices none: a goods issue
        naming no order (posted by another integration), or a ``shipment.dispatched``
        from after this process started (its goods issue's event invoices it)."""
        if event.type == "goods_issue.posted":
            issue = event.payload(GoodsIssuePosted)
            if issue.order_id is None:
                log.info("goods issue of %s names no order; not invoiced", issue.shipment_id)
                return None
            return Shipped(issue.shipment_id, issue.order_id, issue.lines)
        if event.time >= self.started:
            return None
        shipment = event.payload(ShipmentDispatched)
        return Shipped(shipment.shipment_id, shipment.order_id, shipment.lines)

    async def prepare(self, event: Event) -> Invoice | None:
        found = await self._invoice_body(event)
        if found is None:
            return None
        shipment, body = found
        response = await self.erp.request(
            "POST", INVOICES_PATH, json=body, idempotency_key=_key(shipment)
        )
        return await self._issued(shipment, response.status_code, _json(response))

    async def prepare_many(self, events: Sequence[Event]) -> list[Any]:
        """The bus batch's invoices in one ``POST /erp/v1/invoices/batch``, each under
        its own key and answered as its single post would be; the batch refused as a
        whole (4xx): one call each, so that only the bad one waits."""
        prepared: list[Any] = [None] * len(events)
        sent: dict[str, tuple[int, Shipped, dict[str, Any]]] = {}
        shipments = [self.shipped(event) for event in events]
        ids = [s.shipment_id for s in shipments if s is not None]
        if not ids:
            return prepared
        async with self.db.lookup() as conn:
            invoiced = await repo.invoiced_among(conn, ids)
        await self._remember({s.order_id for s in shipments if s is not None})
        for n, event in enumerate(events):
            shipment = shipments[n]
            if shipment is None or shipment.shipment_id in invoiced:
                continue  # nothing to invoice, or the shipment's other fact invoiced it
            try:
                found = await self._invoice_body(event, checked=True)
            except Exception as exc:
                prepared[n] = exc
                continue
            if found is not None and _key(found[0]) not in sent:
                sent[_key(found[0])] = (n, found[0], found[1])
        if sent:
            await self._issue_batch(events, sent, prepared)
        return prepared

    async def _issue_batch(
        self,
        events: Sequence[Event],
        sent: dict[str, tuple[int, Shipped, dict[str, Any]]],
        prepared: list[Any],
    ) -> None:
        items = [{"idempotency_key": key, "invoice": body} for key, (_, _, body) in sent.items()]
        response = await self.erp.request(
            "POST", INVOICES_PATH + "/batch", json={"invoices": items}
        )
        if response.status_code >= 500:
            raise CannotInvoice(f"the ERP failed a batch of {len(items)} invoices")
        results = (
            msgspec.json.decode(response.content)["results"]
            if response.status_code == 200
            else None
        )
        if results is None:
            log.warning(
                "the ERP refused a batch of %d invoices (%d); one by one",
                len(items),
                response.status_code,
            )
        for i, (n, shipment, _) in enumerate(sent.values()):
            try:
                if results is None:
                    prepared[n] = await self.prepare(events[n])
                else:
                    refusal = results[i]["refusal"]
                    status, body = (
                        (201, results[i]["invoice"])
                        if refusal is None
                        else (int(refusal["status"]), refusal)
                    )
                    prepared[n] = await self._issued(shipment, status, body)
            except Exception as exc:
                prepared[n] = exc

    async def _invoice_body(
        self, event: Event, *, checked: bool = False
    ) -> tuple[Shipped, dict[str, Any]] | None:
        """The ERP invoice the shipment makes; None when there is none to make.
        ``checked``: the caller knows the shipment is not invoiced yet."""
        shipment = self.shipped(event)
        if shipment is None:
            return None
        if not checked:
            async with self.db.lookup() as conn:
                if await repo.invoiced(conn, shipment.shipment_id):
                    return None  # the same fact again under another event id
        order = await self._order(shipment.order_id)
        if order is None:
            # Not an order of this platform (the WMS also fulfils for other systems):
            # nothing to invoice here, and retrying would not change that.
            log.error("shipment %s is for unknown order %s; not invoiced", *_ids(shipment))
            return None
        prices = order.prices
        unknown = [line.sku for line in shipment.lines if line.sku not in prices]
        if unknown:
            log.error(
                "shipment %s ships skus not on order %s (%s); not invoiced",
                *_ids(shipment),
                ", ".join(unknown),
            )
            return None
        shipped = [line for line in shipment.lines if line.quantity > 0]
        if not shipped:
            log.warning("shipment %s ships nothing; no invoice", shipment.shipment_id)
            return None
        currency = order.currency or str(prices[shipped[0].sku]["currency"])
        taxed = [
            TaxLine(
                line.sku,
                await self.classes.of(line.sku),
                line.quantity,
                line.quantity * int(prices[line.sku]["amount_minor"]),
            )
            for line in shipped
        ]
        taxes = await self.tax.calculate(currency, order.region, taxed)
        lines = [
            {
                "sku": line.sku,
                "quantity": line.quantity,
                "unit_price": prices[line.sku],
                "tax": {"amount_minor": tax.tax_minor, "currency": prices[line.sku]["currency"]},
                "tax_code": tax.code,
            }
            for line, tax in zip(shipped, taxes, strict=True)
        ]
        body = {
            "order_id": shipment.order_id,
            "shipment_id": shipment.shipment_id,
            "customer_id": order.customer_id,
            "lines": lines,
        }
        return shipment, body

    async def _issued(self, shipment: Shipped, status: int, body: Any) -> Invoice:
        """What the ERP's answer to the shipment's invoice means: the invoice (201, a
        replay's 200; 409 duplicate-invoice: the one it holds), a wait (``NotYet``), or
        ``CannotInvoice``."""
        if status in (200, 201):
            return from_erp(body)
        kind = body.get("type") if isinstance(body, dict) else None
        if status == 409 and kind == "/problems/duplicate-invoice":
            return await self._existing(shipment.order_id, shipment.shipment_id)
        if status == 409 and kind in WAITS:
            raise NotYet(f"shipment {shipment.shipment_id}: {kind}")
        raise CannotInvoice(
            f"shipment {shipment.shipment_id}: ERP answered {status} {str(body)[:500]}"
        )

    async def _order(self, order_id: str) -> PlacedOrder | None:
        """The order as placed. What an invoice takes from it (customer, currency,
        ship-to region, unit prices by sku) never changes once it is accepted, so an
        order's second shipment and a retried delivery read it from memory."""
        cached = self._placed.get(order_id)
        if cached is not None:
            self._placed.move_to_end(order_id)
            return cached
        response = await self.orders.request("GET", f"/orders/v1/orders/{order_id}")
        if response.status_code == 404:
            return None
        if not response.is_success:
            raise CannotInvoice(f"order {order_id}: orders API {response.status_code}")
        return self._keep(response.json())

    async def _remember(self, order_ids: set[str]) -> None:
        """The orders of a bus batch's shipments that are not in memory, read in one
        call per hundred (``GET /orders/v1/orders?order_id=...``). Should that read
        fail, each shipment reads its order on its own (``_order``), which decides."""
        missing = sorted(i for i in order_ids if i not in self._placed)
        for start in range(0, len(missing), ORDERS_PER_READ):
            ids = missing[start : start + ORDERS_PER_READ]
            params = [("order_id", i) for i in ids] + [("limit", str(ORDERS_PER_READ))]
            try:
                response = await self.orders.request("GET", "/orders/v1/orders", params=params)
            except Exception as exc:  # the single reads decide what it means
                log.info("reading %d orders at once: %r", len(ids), exc)
                return
            if not response.is_success:
                return
            for body in response.json()["items"]:
                self._keep(body)

    def _keep(self, body: dict[str, Any]) -> PlacedOrder:
        order = PlacedOrder(
            customer_id=str(body["customer_id"]),
            currency=body.get("currency"),
            region=(body.get("ship_to") or {}).get("region"),
            prices={line["sku"]: line["unit_price"] for line in body["lines"]},
        )
        self._placed[str(body["order_id"])] = order
        if len(self._placed) > PLACED_ORDERS_KEPT:
            self._placed.popitem(last=False)
        return order

    async def _existing(self, order_id: str, shipment_id: str) -> Invoice:
        for item in await read_all(self.erp, "/erp/v1/invoices", {"order_id": order_id}):
            if item["shipment_id"] == shipment_id:
                return from_erp(item)
        raise CannotInvoice(f"the ERP reports shipment {shipment_id} invoiced but lists none")

    async def apply(self, tx: Tx, event: Event, prepared: Invoice | None) -> None:
        if prepared is None or not await repo.insert_invoice(tx.conn, prepared):
            return
        tx.emit(STREAM_BILLING, issued_event(prepared, event))


def _ids(shipment: Shipped) -> tuple[str, str]:
    return shipment.shipment_id, shipment.order_id


def _key(shipment: Shipped) -> str:
    return f"invoice:{shipment.shipment_id}"


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text
