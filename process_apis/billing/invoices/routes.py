from __future__ import annotations

from litestar import Controller, get

from process_apis.billing.invoices.schemas import Invoice
from process_apis.billing.invoices.service import InvoiceService
from shared.auth.litestar_auth import requires
from shared.auth.principal import Principal
from shared.models import CursorParam, IdParam, LimitParam, OrderIdListQuery, Page
from shared.problems import problem_responses


class InvoiceController(Controller):
    path = "/billing/v1/invoices"
    tags = ["invoices"]

    @get(
        "/",
        operation_id="listInvoices",
        summary="List invoices, optionally of some orders (repeat order_id)",
        responses=problem_responses(),
        **requires("billing:read"),
    )
    async def list_invoices(
        self,
        invoices: InvoiceService,
        principal: Principal,
        order_id: OrderIdListQuery = (),  # type: ignore[assignment]
        cursor: CursorParam = None,
        limit: LimitParam = 50,
    ) -> Page[Invoice]:
        return await invoices.list(principal, list(order_id), cursor, limit)

    @get(
        "/{invoice_id:str}",
        operation_id="getInvoice",
        summary="Read one invoice",
        responses=problem_responses(404),
        **requires("billing:read"),
    )
    async def get_invoice(
        self, invoice_id: IdParam, invoices: InvoiceService, principal: Principal
    ) -> Invoice:
        return await invoices.get(principal, invoice_id)
