"""Payments: remittances applied to a customer's invoices, the rest kept as its credit."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from shared.auth.litestar_auth import requires
from shared.auth.principal import Principal
from shared.db import Tx
from shared.idempotency import IdempotencyKey, IdempotencyStore
from shared.models import ID_PATTERN, CursorParam, IdParam, LimitParam, Page, query_filter
from shared.paging import decode_cursor, keyset_page
from shared.problems import problem_responses
from shared.refusals import Refusal
from system_apis.erp.port import ErpPort
from system_apis.erp.schemas import Payment, PaymentIn

CustomerQuery = Annotated[str | None, query_filter(ID_PATTERN, name="customer_id")]


class PaymentController(Controller):
    path = "/erp/v1/payments"
    tags = ["payments"]

    @post(
        "/",
        operation_id="createPayment",
        summary="Record a payment and apply it to the customer's invoices",
        responses=problem_responses(409, 422),
        **requires("erp:write"),
    )
    async def create_payment(
        self,
        data: JSONBody[PaymentIn],
        erp: NamedDependency[ErpPort],
        idempotency: NamedDependency[IdempotencyStore],
        principal: NamedDependency[Principal],
        idempotency_key: IdempotencyKey,
    ) -> Response[Payment]:
        """Applied to the named invoices (each at most its outstanding, together at most
        the amount: 422 ``over-application``; another customer's or an unknown invoice:
        422 ``unknown-invoice``; an invoice named twice: 422 ``duplicate-application``)
        or, naming none, to the open invoices oldest due date first; the rest is
        ``unapplied``. 422 ``invalid-amount`` (0), ``unknown-customer``,
        ``currency-mismatch``. Nothing is written on a refusal."""

        async def effect(tx: Tx) -> tuple[int, Payment]:
            return 201, await erp.create_payment(tx, data)

        return await idempotency.run_once(
            client_id=principal.client_id, key=idempotency_key, payload=data, effect=effect
        )

    @get(
        "/",
        operation_id="listPayments",
        summary="List payments, optionally of a customer",
        responses=problem_responses(),
        **requires("erp:read"),
    )
    async def list_payments(
        self,
        erp: NamedDependency[ErpPort],
        principal: NamedDependency[Principal],
        customer_id: CustomerQuery = None,
        cursor: CursorParam = None,
        limit: LimitParam = 50,
    ) -> Page[Payment]:
        found = await erp.list_payments(
            customer_id=customer_id, after=decode_cursor(cursor), limit=limit + 1
        )
        page = keyset_page(found, limit, key=lambda p: p.payment_id)
        visible = [p for p in page.items if principal.may_see_customer(p.customer_id)]
        return Page(visible, page.next_cursor)

    @get(
        "/{payment_id:str}",
        operation_id="getPayment",
        summary="Read one payment with what it pays of each invoice",
        responses=problem_responses(404),
        **requires("erp:read"),
    )
    async def get_payment(
        self,
        payment_id: IdParam,
        erp: NamedDependency[ErpPort],
        principal: NamedDependency[Principal],
    ) -> Payment:
        found = await erp.get_payment(payment_id)
        if found is None or not principal.may_see_customer(found.customer_id):
            raise Refusal(404, "payment-not-found", f"No payment {payment_id}.")
        return found
