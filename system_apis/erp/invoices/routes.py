from __future__ import annotations

from litestar import Controller, Response, get, post

from shared.auth.litestar_auth import requires
from shared.auth.principal import Principal
from shared.db import Tx
from shared.idempotency import IdempotencyKey, IdempotencyStore
from shared.models import (
    CursorParam,
    LimitParam,
    OrderIdListQuery,
    Page,
    decode_cursor,
    encode_cursor,
)
from shared.problems import ProblemError, problem_responses
from system_apis.erp.port import DuplicateRecord, ErpPort
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
        data: InvoiceIn,
        erp: ErpPort,
        idempotency: IdempotencyStore,
        principal: Principal,
        idempotency_key: IdempotencyKey,
    ) -> Response[Invoice]:
        async def effect(tx: Tx) -> tuple[int, Invoice]:
            try:
                return 201, await erp.create_invoice(tx, data)
            except DuplicateRecord as exc:
                raise ProblemError(
                    409,
                    "duplicate-invoice",
                    f"Shipment {data.shipment_id} is already invoiced.",
                ) from exc

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
        erp: ErpPort,
        principal: Principal,
        order_id: OrderIdListQuery = (),  # type: ignore[assignment]
        cursor: CursorParam = None,
        limit: LimitParam = 50,
    ) -> Page[Invoice]:
        found = await erp.list_invoices(list(order_id), decode_cursor(cursor), limit + 1)
        visible = [i for i in found if principal.may_see_customer(i.customer_id)]
        more = len(found) > limit
        page = visible[:limit]
        return Page(page, encode_cursor(found[limit - 1].invoice_id) if more else None)
