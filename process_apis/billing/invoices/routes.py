from __future__ import annotations

import re
from typing import Annotated

from litestar import Controller, get
from litestar.params import Parameter

from process_apis.billing.invoices.schemas import Invoice
from process_apis.billing.invoices.service import InvoiceService
from shared.auth.litestar_auth import requires
from shared.auth.principal import Principal
from shared.models import CursorParam, IdParam, LimitParam, Page
from shared.problems import ProblemError, problem_responses

# Litestar checks the bounds of the list, not the pattern of each repeated value.
_ORDER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}")


def _checked(order_ids: list[str] | None) -> list[str]:
    bad = [value for value in order_ids or [] if not _ORDER_ID.fullmatch(value)]
    if bad:
        raise ProblemError(
            400,
            "invalid-request",
            "Each order_id must be 1-64 characters of A-Z a-z 0-9 . _ : - (not leading).",
            extra={"errors": [{"key": "order_id", "source": "query", "value": v} for v in bad]},
        )
    return order_ids or []


class InvoiceController(Controller):
    path = "/billing/v1/invoices"
    tags = ["invoices"]

    @get(
        "/",
        operation_id="listInvoices",
        summary="List invoices, optionally of some orders",
        responses=problem_responses(),
        **requires("billing:read"),
    )
    async def list_invoices(
        self,
        invoices: InvoiceService,
        principal: Principal,
        order_id: Annotated[
            list[IdParam] | None,
            Parameter(
                query="order_id",
                required=False,
                max_items=100,
                description="Only invoices of these orders (repeatable).",
            ),
        ] = None,
        cursor: CursorParam = None,
        limit: LimitParam = 50,
    ) -> Page[Invoice]:
        return await invoices.list(principal, _checked(order_id), cursor, limit)

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
