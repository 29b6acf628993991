from __future__ import annotations

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from shared.auth.litestar_auth import requires
from shared.auth.principal import Principal
from shared.db import Tx
from shared.idempotency import IdempotencyKey, IdempotencyStore
from shared.models import (
    CursorParam,
    LimitParam,
    OrderIdListQuery,
    Page,
)
from shared.paging import decode_cursor, keyset_page
from shared.problems import problem_responses
from system_apis.erp.port import ErpPort
from system_apis.erp.schemas import Invoice, InvoiceIn


class InvoiceController(Controller):
    path = "/erp/v1/invoices"
    tags = ["invoices"]

    @post(
        "/",
        operation_id="createInvoice",
        summary="Issue an invoice for one shipment (at most one per shipment)",
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
        async def effect(tx: Tx) -> tuple[int, Invoice]:
            return 201, await erp.create_invoice(tx, data)

        return await idempotency.run_once(
            client_id=principal.client_id, key=idempotency_key, payload=data, effect=effect
        )

    @get(
        "/",
        operation_id="listInvoices",
        summary="List invoices, optionally of some orders",
        responses=problem_responses(),
        **requires("erp:read"),
    )
    async def list_invoices(
        self,
        erp: NamedDependency[ErpPort],
        principal: NamedDependency[Principal],
        order_id: OrderIdListQuery = (),  # type: ignore[assignment]
        cursor: CursorParam = None,
        limit: LimitParam = 50,
    ) -> Page[Invoice]:
        found = await erp.list_invoices(list(order_id), decode_cursor(cursor), limit + 1)
        page = keyset_page(found, limit, key=lambda i: i.invoice_id)
        # The cursor moves past the invoices of customers this client may not see.
        visible = [i for i in page.items if principal.may_see_customer(i.customer_id)]
        return Page(visible, page.next_cursor)
