"""Billing process API: the one wiring point."""

from __future__ import annotations

from litestar import Litestar
from litestar.openapi.spec import Tag

from process_apis.billing.balances.routes import BalanceController
from process_apis.billing.balances.service import BalanceService
from process_apis.billing.credit_notes.events import CreditOnReturn
from process_apis.billing.credit_notes.routes import AdjustmentController, CreditNoteController
from process_apis.billing.credit_notes.service import CreditNoteService
from process_apis.billing.db import metadata, upgrade_schema
from process_apis.billing.invoices.events import CONSUMER_GROUP, InvoiceOnShipment
from process_apis.billing.invoices.routes import InvoiceController
from process_apis.billing.invoices.service import InvoiceService
from process_apis.billing.payments.routes import PaymentController
from process_apis.billing.payments.service import PaymentService
from process_apis.billing.statements.routes import StatementController
from process_apis.billing.statements.service import StatementService
from process_apis.billing.tax.calculator import TaxCalculator, rate_table_from_env
from process_apis.billing.tax.classes import ItemTaxClasses
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
    tax_calculator: TaxCalculator | None = None,
) -> Litestar:
    settings = settings or load_settings("billing")
    runtime = Runtime(settings, metadata, key_source=key_source, consumes_events=True)
    if service_tokens is not None:
        runtime.tokens = service_tokens
    erp = runtime.downstream("erp")
    invoicing = InvoiceOnShipment(
        runtime.db,
        runtime.downstream("order_to_ship"),
        erp,
        tax_calculator or rate_table_from_env(),
        ItemTaxClasses(erp),
    )
    # UNORDERED: one invoice per shipment, whatever order the shipments arrive in; one
    # credit per disposition, whatever order the dispositions arrive in. A shipment is
    # invoiced on its goods issue's posting; shipment.dispatched only for those from
    # before this process started (decision 0045).
    runtime.consume(
        CONSUMER_GROUP,
        [STREAM_ERP, STREAM_WMS],
        {
            "goods_issue.posted": invoicing,
            "shipment.dispatched": invoicing,
            "return.dispositioned": CreditOnReturn(runtime.db, erp),
        },
        ordered_types=(),
    )
    return build_app(
        runtime,
        route_handlers=[
            InvoiceController,
            AdjustmentController,
            PaymentController,
            CreditNoteController,
            StatementController,
            BalanceController,
        ],
        title="Tally billing process API",
        description=(
            "Shipment-linked invoicing with taxes, payments, statements, and credit "
            "notes from returns and price corrections."
        ),
        tags=[
            Tag(name="invoices", description="Invoices issued per shipment"),
            Tag(name="payments", description="Remittances applied to invoices"),
            Tag(name="credit-notes", description="Credit notes from returns and price corrections"),
            Tag(name="statements", description="A customer's statement of account"),
        ],
        dependencies={
            "invoices": InvoiceService(runtime.db),
            "payments": PaymentService(runtime.idempotency, erp),
            "credit_notes": CreditNoteService(runtime.idempotency, erp),
            "statements": StatementService(erp),
            "balances": BalanceService(erp),
            "runtime": runtime,
        },
        extra_lifespans=[at_startup(lambda: upgrade_schema(runtime.db))],
    )
