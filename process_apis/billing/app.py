"""Billing process API: the one wiring point."""

from __future__ import annotations

from litestar import Litestar
from litestar.openapi.spec import Tag

from process_apis.billing.db import metadata
from process_apis.billing.invoices.events import CONSUMER_GROUP, InvoiceOnShipment
from process_apis.billing.invoices.routes import InvoiceController
from process_apis.billing.invoices.service import InvoiceService
from shared.auth.service_tokens import ServiceTokens
from shared.auth.verifier import KeySource
from shared.events.catalog import STREAM_WMS
from shared.service import Runtime, build_app
from shared.settings import Settings, load_settings


def create_app(
    settings: Settings | None = None,
    *,
    key_source: KeySource | None = None,
    service_tokens: ServiceTokens | None = None,
) -> Litestar:
    settings = settings or load_settings("billing")
    runtime = Runtime(settings, metadata, key_source=key_source, consumes_events=True)
    if service_tokens is not None:
        runtime.tokens = service_tokens
    handler = InvoiceOnShipment(
        runtime.db, runtime.downstream("order_to_ship"), runtime.downstream("erp")
    )
    # UNORDERED: one invoice per shipment, whatever order the shipments arrive in.
    runtime.consume(
        CONSUMER_GROUP, [STREAM_WMS], {"shipment.dispatched": handler}, ordered_types=()
    )
    return build_app(
        runtime,
        route_handlers=[InvoiceController],
        title="Tally billing process API",
        description="Shipment-linked invoicing: one ERP invoice per dispatched shipment.",
        tags=[Tag(name="invoices", description="Invoices issued per shipment")],
        dependencies={"invoices": InvoiceService(runtime.db), "runtime": runtime},
    )
