from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from process_apis.billing.invoices.schemas import Invoice, InvoiceStatus
from process_apis.billing.invoices.service import InvoiceService
from shared.auth.litestar_auth import requires
from shared.auth.principal import Principal
from shared.models import (
    ID_PATTERN,
    CursorParam,
    IdParam,
    LimitParam,
    OrderIdListQuery,
    Page,
    query_filter,
)
from shared.problems import problem_responses

CustomerFilter = Annotated[
    str | None,
    query_filter(ID_PATTERN, name="customer_id", description="Only this customer's invoices."),
]

StatusFilter = Annotated[
    list[InvoiceStatus],
    QueryParameter(
        name="status", max_items=4, description="Only invoices in one of these statuses."
    ),
]


class InvoiceController(Controller):
    path = "/billing/v1/invoices"
    tags = ["invoices"]

    @get(
        "/",
        operation_id="listInvoices",
        summary="List invoices, optionally of some orders (repeat order_id), one customer or some statuses",
        responses=problem_responses(),
        **requires("billing:read"),
    )
    async def list_invoices(
        self,
        invoices: NamedDependency[InvoiceService],
        principal: NamedDependency[Principal],
        order_id: OrderIdListQuery = (),  # type: ignore[assignment]
        customer_id: CustomerFilter = None,
        status: StatusFilter = (),  # type: ignore[assignment]
        cursor: CursorParam = None,
        limit: LimitParam = 50,
    ) -> Page[Invoice]:
        """A client bound to a customer sees that customer's invoices only, whatever
        ``customer_id`` it asks for. ``status=issued&status=partially_paid``: what is
        still owed."""
        return await invoices.list(
            principal, list(order_id), customer_id, cursor, limit, statuses=list(status)
        )

    @get(
        "/{invoice_id:str}",
        operation_id="getInvoice",
        summary="Read one invoice (another customer's: 404)",
        responses=problem_responses(404),
        **requires("billing:read"),
    )
    async def get_invoice(
        self,
        invoice_id: IdParam,
        invoices: NamedDependency[InvoiceService],
        principal: NamedDependency[Principal],
    ) -> Invoice:
        return await invoices.get(principal, invoice_id)
