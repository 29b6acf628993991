"""WMS system API: the one wiring point."""

from __future__ import annotations

from litestar import Litestar
from litestar.openapi.spec import Tag

from shared.auth.service_tokens import ServiceTokens
from shared.auth.verifier import KeySource
from shared.service import Runtime, at_startup, build_app
from shared.settings import Settings, load_settings
from system_apis.wms.adapters.reference import ReferenceWms
from system_apis.wms.adjustments.routes import AdjustmentController, CycleCountController
from system_apis.wms.db import metadata, upgrade_schema
from system_apis.wms.fulfillment.changes import FulfillmentChangeController
from system_apis.wms.fulfillment.routes import FulfillmentController
from system_apis.wms.fulfillment.shipment_batch import ShipmentBatchController
from system_apis.wms.receipts.routes import ReceiptController
from system_apis.wms.return_authorizations.routes import ReturnAuthorizationController
from system_apis.wms.returns.routes import ReturnController
from system_apis.wms.shipments.routes import DeliveryController, ShipmentController
from system_apis.wms.stock.routes import StockController
from system_apis.wms.warehouses.routes import WarehouseController


def create_app(
    settings: Settings | None = None,
    *,
    key_source: KeySource | None = None,
    service_tokens: ServiceTokens | None = None,
) -> Litestar:
    settings = settings or load_settings("wms")
    runtime = Runtime(settings, metadata, key_source=key_source, produces_events=True)
    if service_tokens is not None:
        runtime.tokens = service_tokens
    wms = ReferenceWms(runtime.db)
    return build_app(
        runtime,
        route_handlers=[
            WarehouseController,
            ReceiptController,
            FulfillmentController,
            FulfillmentChangeController,
            ShipmentController,
            ShipmentBatchController,
            DeliveryController,
            StockController,
            AdjustmentController,
            CycleCountController,
            ReturnController,
            ReturnAuthorizationController,
        ],
        title="Tally WMS system API",
        description=(
            "Warehouses, inbound receipts, fulfillment orders, picks, put-aways, shortages, "
            "shipments and their delivery, adjustments, cycle counts, return authorizations, returns and physical stock of the WMS behind a canonical contract."
        ),
        tags=[
            Tag(name="warehouses"),
            Tag(name="receipts"),
            Tag(name="fulfillment"),
            Tag(name="shipments"),
            Tag(name="stock"),
            Tag(name="returns"),
        ],
        dependencies={"wms": wms, "idempotency": runtime.idempotency, "runtime": runtime},
        extra_lifespans=[at_startup(lambda: upgrade_schema(runtime.db))],
    )
