"""Availability process API: the one wiring point."""

from __future__ import annotations

from litestar import Litestar
from litestar.openapi.spec import Tag

from process_apis.availability.allocations.batcher import AllocationBatcher
from process_apis.availability.allocations.fast_path import AllocationFastPath
from process_apis.availability.allocations.routes import AllocationController
from process_apis.availability.consumers import erp as erp_feed
from process_apis.availability.consumers.wms import (
    HANDLERS,
    ORDERED_TYPES,
    lock_positions_of_run,
)
from process_apis.availability.db import metadata, upgrade_schema
from process_apis.availability.holds.routes import HoldController
from process_apis.availability.holds.sweeper import HoldSweeper
from process_apis.availability.positions.counts import CountController
from process_apis.availability.positions.routes import ItemController
from process_apis.availability.positions.safety_stock import SafetyStockController
from process_apis.availability.postings import consumer as erp_postings
from process_apis.availability.read_cache import wiring as read_cache
from process_apis.availability.read_cache.fast_path import ReadFastPath
from process_apis.availability.read_cache.reader import ItemReader
from process_apis.availability.reconciliation.job import Reconciler
from process_apis.availability.reconciliation.routes import ReconciliationController
from process_apis.availability.reconciliation.settings import load_reconcile_settings
from process_apis.availability.reconciliation.sources import HttpSources
from process_apis.availability.rules.routes import ChannelRuleController
from process_apis.availability.strategies.routes import StrategyController
from process_apis.availability.v2.deprecation import stamp_deprecation
from process_apis.availability.v2.routes import ItemControllerV2
from shared.auth.service_tokens import ServiceTokens
from shared.auth.verifier import KeySource
from shared.events.catalog import STREAM_ERP, STREAM_WMS
from shared.service import Runtime, at_startup, build_app
from shared.settings import Settings, load_settings


def create_app(
    settings: Settings | None = None,
    *,
    key_source: KeySource | None = None,
    service_tokens: ServiceTokens | None = None,
) -> Litestar:
    settings = settings or load_settings("availability")
    runtime = Runtime(
        settings, metadata, key_source=key_source, produces_events=True, consumes_events=True
    )
    if service_tokens is not None:
        runtime.tokens = service_tokens
    runtime.consume(
        "availability",
        [STREAM_WMS],
        HANDLERS,
        ordered_types=ORDERED_TYPES,
        run_start=lock_positions_of_run,
    )
    runtime.consume(
        "availability-erp", [STREAM_ERP], erp_feed.HANDLERS, ordered_types=erp_feed.ORDERED_TYPES
    )
    if erp_postings.enabled():  # the warehouse's movements posted to the ERP (0028)
        runtime.consume(
            erp_postings.CONSUMER_GROUP,
            [STREAM_WMS],
            erp_postings.handlers(runtime.db, runtime.downstream("erp")),
            ordered_types=(),
            inbox="erp_postings_",  # the "availability" group reads the same events
        )
    sources = HttpSources(runtime.downstream("erp"), runtime.downstream("wms"))
    reconciler = Reconciler(runtime.db, sources, load_reconcile_settings())
    runtime.singletons.append(reconciler.scheduled)
    runtime.singletons.append(HoldSweeper(runtime.db))
    allocation_batcher = AllocationBatcher(runtime.db, runtime.idempotency)
    item_reader = ItemReader(runtime.db, read_cache.install(settings, runtime.db))
    app = build_app(
        runtime,
        route_handlers=[
            ItemController,
            ItemControllerV2,
            CountController,
            SafetyStockController,
            AllocationController,
            HoldController,
            ChannelRuleController,
            StrategyController,
            ReconciliationController,
        ],
        title="Tally availability process API",
        description=(
            "The inventory position per sku, location and lot with every bucket, "
            "available-to-promise with freshness, atomic allocation of orders, holds "
            "that expire on their own, channel ring-fences and caps, and warehouse "
            "strategies per channel."
        ),
        tags=[
            Tag(name="availability"),
            Tag(name="allocations"),
            Tag(name="holds"),
            Tag(name="channel-rules"),
            Tag(name="strategies"),
            Tag(name="reconciliation"),
        ],
        dependencies={
            "db": runtime.db,
            "idempotency": runtime.idempotency,
            "runtime": runtime,
            "reconciler": reconciler,
            "allocation_batcher": allocation_batcher,
            "item_reader": item_reader,
        },
        extra_lifespans=[at_startup(lambda: upgrade_schema(runtime.db))],
    )
    app.before_send.append(stamp_deprecation)  # v1 answers point at v2
    # The hot reads (0039) inside, allocations outermost (0019): each hands the other's
    # requests on after one comparison of the path.
    app.asgi_handler = ReadFastPath(
        app.asgi_handler, runtime.verifier, item_reader, settings.service
    )
    app.asgi_handler = AllocationFastPath(
        app.asgi_handler, runtime.verifier, allocation_batcher, settings.service
    )
    return app
