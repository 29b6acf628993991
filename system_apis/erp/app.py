"""ERP system API: the one wiring point."""

from __future__ import annotations

from litestar import Litestar
from litestar.openapi.spec import Tag

from shared.auth.service_tokens import ServiceTokens
from shared.auth.verifier import KeySource
from shared.service import Runtime, at_startup, build_app
from shared.settings import Settings, load_settings
from system_apis.erp.adapters.reference import ReferenceErp
from system_apis.erp.credit_notes.routes import CreditNoteController
from system_apis.erp.customers.balance import CustomerBalanceController
from system_apis.erp.customers.prices import CustomerPriceController
from system_apis.erp.customers.routes import CustomerController
from system_apis.erp.customers.terms import OrderTermsBatchController, OrderTermsController
from system_apis.erp.db import metadata, upgrade_schema
from system_apis.erp.inventory.routes import InventoryController
from system_apis.erp.invoices.routes import InvoiceController
from system_apis.erp.items.routes import ItemController
from system_apis.erp.payments.routes import PaymentController
from system_apis.erp.port import ErpPort
from system_apis.erp.purchasing.routes import AsnController, PurchaseOrderController
from system_apis.erp.sales_orders.routes import SalesOrderController


def create_app(
    settings: Settings | None = None,
    *,
    key_source: KeySource | None = None,
    service_tokens: ServiceTokens | None = None,
) -> Litestar:
    settings = settings or load_settings("erp")
    runtime = Runtime(settings, metadata, key_source=key_source, produces_events=True)
    if service_tokens is not None:
        runtime.tokens = service_tokens
    erp: ErpPort = ReferenceErp(runtime.db)  # mypy holds the adapter to the port
    return build_app(
        runtime,
        route_handlers=[
            ItemController,
            CustomerController,
            CustomerPriceController,
            OrderTermsController,
            OrderTermsBatchController,
            CustomerBalanceController,
            SalesOrderController,
            InvoiceController,
            CreditNoteController,
            PaymentController,
            PurchaseOrderController,
            AsnController,
            InventoryController,
        ],
        title="Tally ERP system API",
        description=(
            "Items, customers (status, group, terms, ship-tos, own prices, balance), sales "
            "orders and credit exposure, invoices, credit notes, payments, purchase orders, "
            "ASNs and the financial inventory of the ERP behind a canonical contract."
        ),
        tags=[
            Tag(name="items"),
            Tag(name="customers"),
            Tag(name="sales-orders"),
            Tag(name="invoices"),
            Tag(name="credit-notes"),
            Tag(name="payments"),
            Tag(name="purchasing"),
            Tag(name="inventory"),
        ],
        dependencies={"erp": erp, "idempotency": runtime.idempotency, "runtime": runtime},
        extra_lifespans=[at_startup(lambda: upgrade_schema(runtime.db))],
    )
