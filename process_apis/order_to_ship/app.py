"""Order-to-ship process API: the one wiring point."""

from __future__ import annotations

from litestar import Litestar
from litestar.openapi.spec import Tag

from process_apis.order_to_ship.catalog.routes import CatalogController
from process_apis.order_to_ship.catalog.service import CatalogService
from process_apis.order_to_ship.customers.routes import AccountController
from process_apis.order_to_ship.customers.service import AccountService
from process_apis.order_to_ship.db import metadata, upgrade_schema
from process_apis.order_to_ship.flows.backorders import BackorderFiller
from process_apis.order_to_ship.flows.cancel_order import CancelOrder
from process_apis.order_to_ship.flows.erp_sync import ErpSync
from process_apis.order_to_ship.flows.holds import HoldDecisions
from process_apis.order_to_ship.flows.partners import Partners
from process_apis.order_to_ship.flows.place_order import PlaceOrder
from process_apis.order_to_ship.flows.releases import Releaser
from process_apis.order_to_ship.flows.resume import ResumeStalled
from process_apis.order_to_ship.orders.events import (
    CONSUMER_GROUP,
    STOCK_CONSUMER_GROUP,
    lock_orders_of_run,
    order_of,
)
from process_apis.order_to_ship.orders.history_batch import (
    HistoryReader,
    OrderHistoryBatchController,
)
from process_apis.order_to_ship.orders.routes import OrderController
from process_apis.order_to_ship.orders.service import OrderService
from process_apis.order_to_ship.returns.events import handlers as return_handlers
from process_apis.order_to_ship.returns.notifier import WmsRegistrations
from process_apis.order_to_ship.returns.routes import OrderReturnsController, ReturnController
from process_apis.order_to_ship.returns.service import ReturnService
from process_apis.order_to_ship.returns.settings import ReturnsSettings, load_returns_settings
from process_apis.order_to_ship.returns.sweeper import ExpirySweeper
from process_apis.order_to_ship.warehouse.events import handlers as warehouse_handlers
from shared.auth.service_tokens import ServiceTokens
from shared.auth.verifier import KeySource
from shared.events.catalog import STREAM_AVAILABILITY, STREAM_BILLING, STREAM_WMS
from shared.service import Runtime, at_startup, build_app
from shared.settings import Settings, load_settings


def create_app(
    settings: Settings | None = None,
    *,
    key_source: KeySource | None = None,
    service_tokens: ServiceTokens | None = None,
    resume_after: float = 30.0,
    resume_every: float = 5.0,
    returns_settings: ReturnsSettings | None = None,
) -> Litestar:
    settings = settings or load_settings("order_to_ship")
    returns_settings = returns_settings or load_returns_settings()
    runtime = Runtime(settings, metadata, key_source=key_source, consumes_events=True)
    if service_tokens is not None:
        runtime.tokens = service_tokens
    partners = Partners(runtime)
    releaser = Releaser(runtime.db, partners)
    filler = BackorderFiller(runtime.db, partners, releaser)
    place = PlaceOrder(runtime.db, runtime.idempotency, partners, releaser)
    orders = OrderService(
        runtime.db,
        place,
        CancelOrder(runtime.db, partners),
        HoldDecisions(runtime.db, partners, releaser, filler),
    )
    registrations = WmsRegistrations(runtime.db, runtime.downstream("wms"))
    returns = ReturnService(runtime.db, runtime.idempotency, returns_settings, registrations.wake)
    # Warehouse and billing facts move orders and their RMAs; all unordered (see
    # warehouse/events.py and returns/events.py).
    runtime.consume(
        CONSUMER_GROUP,
        [STREAM_WMS, STREAM_BILLING],
        {**warehouse_handlers(runtime.db, partners), **return_handlers()},
        ordered_types=(),
        run_order=order_of,
        run_start=lock_orders_of_run,
    )
    # Availability's stream is busy with allocations: its own group, so skipping them
    # never delays a shipment.
    runtime.consume(
        STOCK_CONSUMER_GROUP, [STREAM_AVAILABILITY], filler.handlers(), ordered_types=()
    )
    runtime.singletons += [
        ResumeStalled(place, after=resume_after, every=resume_every),
        releaser,
        filler,
        ErpSync(runtime.db, partners),
        registrations,
        ExpirySweeper(runtime.db, registrations.wake, every=returns_settings.sweep_every),
    ]
    return build_app(
        runtime,
        route_handlers=[
            OrderController,
            OrderHistoryBatchController,
            OrderReturnsController,
            ReturnController,
            AccountController,
            CatalogController,
        ],
        title="Tally order-to-ship process API",
        description=(
            "Order orchestration: credit and price checks, allocation, release to "
            "warehouses, shipment tracking, backorders, cancellation and returns (RMAs)."
        ),
        tags=[
            Tag(name="orders", description="Orders from acceptance to shipment"),
            Tag(name="returns", description="Returns authorised on the order (RMAs)"),
            Tag(name="customers", description="The customer's account, read from the ERP"),
            Tag(name="catalog", description="Items with the customer's price"),
        ],
        dependencies={
            "orders": orders,
            "returns": returns,
            "order_histories": HistoryReader(runtime.db),
            "accounts": AccountService(partners.erp),
            "catalog": CatalogService(partners.erp),
            "runtime": runtime,
        },
        extra_lifespans=[at_startup(lambda: upgrade_schema(runtime.db))],
    )
