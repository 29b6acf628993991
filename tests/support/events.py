"""Event envelopes for tests, built with the producers' own ``new_event``.

- ``thing_event``: a test-only ``thing.done`` (payload ``Thing``) for bus, outbox and
  consumer tests that need no domain;
- ``wms_event`` / ``erp_event``: any catalog payload as the WMS or the ERP publishes it;
- ``receipt_posted`` / ``shipment_dispatched``: the two WMS stock facts most tests feed;
- ``bus_events``: what a service under test published on its embedded event log.

A WMS stock event's ``sequence`` is the warehouse's stock version; builders default it
to 0 where the caller (or its publisher) numbers the events.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import msgspec
import uuid_utils

from shared.events.catalog import InvoiceIssued, Line, Money, ReceiptPosted, ShipmentDispatched
from shared.events.envelope import Event, new_event
from shared.events.sqlite_log import SqliteEventLog
from shared.settings import Settings

# (sku, quantity) or (sku, quantity, lot)
StockLine = tuple[str, int] | tuple[str, int, str | None]


class Thing(msgspec.Struct, frozen=True):
    n: int


def thing_event(
    subject: str,
    sequence: int,
    n: int | None = None,
    *,
    type_: str = "thing.done",
    source: str = "tally.test",
) -> Event:
    """A ``Thing`` event; ``n`` defaults to the sequence."""
    return new_event(
        source=source,
        type_=type_,
        subject=subject,
        sequence=sequence,
        payload=Thing(sequence if n is None else n),
    )


def wms_event(
    type_: str, warehouse_id: str, payload: msgspec.Struct, *, sequence: int = 0
) -> Event:
    return new_event(
        source="tally.wms",
        type_=type_,
        subject=f"warehouse:{warehouse_id}",
        sequence=sequence,
        payload=payload,
    )


def erp_event(type_: str, subject: str, payload: msgspec.Struct, *, sequence: int) -> Event:
    return new_event(
        source="tally.erp", type_=type_, subject=subject, sequence=sequence, payload=payload
    )


def receipt_posted(
    warehouse_id: str,
    lines: Sequence[StockLine],
    *,
    receipt_id: str | None = None,
    sequence: int = 0,
) -> Event:
    return wms_event(
        "receipt.posted",
        warehouse_id,
        ReceiptPosted(
            receipt_id=receipt_id or f"RCV-{uuid_utils.uuid7()}",
            warehouse_id=warehouse_id,
            lines=[Line(*line) for line in lines],
        ),
        sequence=sequence,
    )


def shipment_dispatched(
    order_id: str,
    warehouse_id: str,
    lines: Sequence[StockLine],
    *,
    fulfillment_order_id: str | None = None,
    shipment_id: str | None = None,
    tracking_number: str = "1Z1",
    sequence: int = 0,
) -> Event:
    return wms_event(
        "shipment.dispatched",
        warehouse_id,
        ShipmentDispatched(
            shipment_id=shipment_id or f"SHP-{uuid_utils.uuid7()}",
            fulfillment_order_id=fulfillment_order_id or f"FO-{order_id}",
            order_id=order_id,
            warehouse_id=warehouse_id,
            carrier="UPS",
            tracking_number=tracking_number,
            lines=[Line(*line) for line in lines],
        ),
        sequence=sequence,
    )


def invoice_issued(
    order_id: str, shipment_id: str, customer_id: str, *, total_minor: int = 200
) -> Event:
    """Billing's ``invoice.issued`` for a shipment, as its relay publishes it."""
    invoice_id = f"INV-{uuid_utils.uuid7()}"
    return new_event(
        source="billing",
        type_="invoice.issued",
        subject=invoice_id,
        sequence=1,
        payload=InvoiceIssued(
            invoice_id=invoice_id,
            erp_invoice_id=f"ERP-{invoice_id}",
            order_id=order_id,
            shipment_id=shipment_id,
            customer_id=customer_id,
            total=Money(total_minor, "USD"),
        ),
    )


def bus_events(settings: Settings, stream: str | None = None) -> list[Event]:
    """The first 1000 events of the service's embedded log (of ``stream`` if given)."""

    async def read() -> list[Event]:
        log = SqliteEventLog(settings.bus_url.removeprefix("sqlite:///"))
        try:
            return [event for _, _, event in await log.read_all(stream=stream, limit=1000)]
        finally:
            await log.close()

    return asyncio.run(read())
