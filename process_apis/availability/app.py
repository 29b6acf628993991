"""Availability process API: the one wiring point."""

from __future__ import annotations

from litestar import Litestar
from litestar.openapi.spec import Tag

from process_apis.availability.allocations.routes import AllocationController
from process_apis.availability.consumers.wms import HANDLERS, ORDERED_TYPES
from process_apis.availability.db import metadata
from process_apis.availability.positions.routes import ItemController
from shared.auth.verifier import KeySource
from shared.events.catalog import STREAM_WMS
from shared.service import Runtime, build_app
from shared.settings import Settings, load_settings


def create_app(settings: Settings | None = None, key_source: KeySource | None = None) -> Litestar:
    settings = settings or load_settings("availability")
    runtime = Runtime(
        settings, metadata, key_source=key_source, produces_events=True, consumes_events=True
    )
    runtime.consume("availability", [STREAM_WMS], HANDLERS, ordered_types=ORDERED_TYPES)
    return build_app(
        runtime,
        route_handlers=[ItemController, AllocationController],
        title="Tally availability process API",
        description=(
            "The inventory position per sku, location and lot with every bucket, "
            "available-to-promise with freshness, and atomic allocation of orders."
        ),
        tags=[Tag(name="availability"), Tag(name="allocations")],
        dependencies={"db": runtime.db, "idempotency": runtime.idempotency, "runtime": runtime},
    )
