"""Invoices: one per shipment, issued after the shipment's goods issue is posted, with
tax lines, terms, due date and what credit notes and payments took of them."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, QueryParameter

from shared.auth.litestar_auth import requires
from shared.auth.principal import Principal
from shared.db import Tx
from shared.idempotency import IdempotencyKey, IdempotencyStore, item_outcomes
from shared.models import (
    ID_PATTERN,
    CursorParam,
    Identifier,
    IdParam,
    LimitParam,
    OrderIdListQuery,
    Page,
    query_filter,
)
from shared.paging import decode_cursor, keyset_page
from shared.problems import problem_responses
from shared.refusals import Refusal
from system_apis.erp.invoices.schemas import InvoiceBatch, InvoiceBatchIn, InvoiceBatchResult
from system_apis.erp.port import ErpPort
from system_apis.erp.schemas import Invoice, InvoiceIn, InvoiceStatus

CustomerQuery = Annotated[str | None, query_filter(ID_PATTERN, name="customer_id")]
StatusQuery = Annotated[InvoiceStatus | None, QueryParameter(name="status", required=False)]
InvoiceIdsQuery = Annotated[
    list[Identifier],
    query_filter(
        ID_PATTERN, name="invoice_id", many=True, description="Only these invoices (up to 100)."
    ),
]


class InvoiceController(Controller):
    path = "/erp/v1/invoices"
    tags = ["invoices"]

    @post(
        "/",
        operation_id="createInvoice",
        summary="Issue an invoice for one posted shipment (at most one per shipment)",
        responses=problem_responses(409, 422),
        **requires("erp:write"),
    )
    async def create_invoice(
        self,
        data: JSONBody[InvoiceIn],
        erp: NamedDependency[ErpPort],
        idempotency: NamedDependency[IdempotencyStore],
        principal: NamedDependency[Principal],
        idempotency_key: IdempotencyKey,
    ) -> Response[Invoice]:
        """409 ``shipment-not-posted`` until the shipment's goods issue is posted and
        409 ``order-not-booked`` until the sales order is (both a wait); 422
        ``customer-mismatch``, ``not-on-order``, ``price-mismatch`` (not the order's
        price), ``over-billing`` (more of a sku than the goods issue took),
        ``currency-mismatch`` (not the customer's); 409 ``duplicate-invoice`` for a
        shipment invoiced already. Nothing is written on a refusal."""

        async def effect(tx: Tx) -> tuple[int, Invoice]:
            return 201, await erp.create_invoice(tx, data)

        return await idempotency.run_once(
            client_id=principal.client_id, key=idempotency_key, payload=data, effect=effect
        )

    @post(
        "/batch",
        operation_id="createInvoices",
        summary="Issue up to 100 invoices in one call, each as its single create would",
        status_code=200,
        responses=problem_responses(422),
        **requires("erp:write"),
    )
    async def create_invoices(
        self,
        data: JSONBody[InvoiceBatchIn],
        erp: NamedDependency[ErpPort],
        idempotency: NamedDependency[IdempotencyStore],
        principal: NamedDependency[Principal],
    ) -> InvoiceBatch:
        """One transaction for the batch. Each item is answered as ``POST /`` with
        ``Idempotency-Key: <idempotency_key>`` would answer it: a key seen before (by
        either endpoint) replays its invoice; a new one issues it; a refusal (the key
        reused with another payload, 409 ``shipment-not-posted``, ``order-not-booked``,
        ``duplicate-invoice``, a 422 of the invoice's lines, ...) changes nothing of that
        item and nothing of the others. Keys repeated within the batch are 422
        ``duplicate-idempotency-key``."""
        items = data.invoices

        async def effect(tx: Tx, n: int) -> tuple[int, Invoice]:
            return 201, await erp.create_invoice(tx, items[n].invoice)

        answers = await idempotency.run_each_once(
            client_id=principal.client_id,
            items=[(item.idempotency_key, item.invoice) for item in items],
            effect=effect,
        )
        return InvoiceBatch(
            [
                InvoiceBatchResult(item.idempotency_key, invoice=issued, refusal=why)
                for item, (issued, why) in zip(items, item_outcomes(answers, Invoice), strict=True)
            ]
        )

    @get(
        "/",
        operation_id="listInvoices",
        summary="List invoices, optionally some by id, of some orders, of a customer, in a status",
        responses=problem_responses(),
        **requires("erp:read"),
    )
    async def list_invoices(
        self,
        erp: NamedDependency[ErpPort],
        principal: NamedDependency[Principal],
        order_id: OrderIdListQuery = (),  # type: ignore[assignment]
        customer_id: CustomerQuery = None,
        status: StatusQuery = None,
        invoice_id: InvoiceIdsQuery = (),  # type: ignore[assignment]
        cursor: CursorParam = None,
        limit: LimitParam = 50,
    ) -> Page[Invoice]:
        found = await erp.list_invoices(
            list(order_id),
            decode_cursor(cursor),
            limit + 1,
            customer_id=customer_id,
            status=status,
            invoice_ids=list(invoice_id),
        )
        page = keyset_page(found, limit, key=lambda i: i.invoice_id)
        # The cursor moves past the invoices of customers this client may not see.
        visible = [i for i in page.items if principal.may_see_customer(i.customer_id)]
        return Page(visible, page.next_cursor)

    @get(
        "/{invoice_id:str}",
        operation_id="getInvoice",
        summary="Read one invoice with what is paid, credited and outstanding",
        responses=problem_responses(404),
        **requires("erp:read"),
    )
    async def get_invoice(
        self,
        invoice_id: IdParam,
        erp: NamedDependency[ErpPort],
        principal: NamedDependency[Principal],
    ) -> Invoice:
        found = await erp.get_invoice(invoice_id)
        if found is None or not principal.may_see_customer(found.customer_id):
            raise Refusal(404, "invoice-not-found", f"No invoice {invoice_id}.")
        return found
