from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from process_apis.billing.payments.schemas import Payment, PaymentIn
from process_apis.billing.payments.service import PaymentService
from shared.auth.litestar_auth import requires
from shared.auth.principal import Principal
from shared.idempotency import IdempotencyKey
from shared.models import (
    ID_PATTERN,
    CursorParam,
    Identifier,
    IdParam,
    LimitParam,
    Page,
    query_filter,
)
from shared.problems import problem_responses

CustomerFilter = Annotated[
    str | None,
    query_filter(ID_PATTERN, name="customer_id", description="Only this customer's payments."),
]
InvoicesFilter = Annotated[
    list[Identifier],
    query_filter(
        ID_PATTERN,
        name="invoice_id",
        many=True,
        description="Only payments applied to one of these invoices (up to 100).",
    ),
]


class PaymentController(Controller):
    path = "/billing/v1/payments"
    tags = ["payments"]

    @post(
        "/",
        operation_id="recordPayment",
        summary="Record a remittance: applied to the named invoices, or oldest due first",
        status_code=201,
        responses=problem_responses(409, 422, 502, 503),
        **requires("billing:write"),
    )
    async def record_payment(
        self,
        data: JSONBody[PaymentIn],
        payments: NamedDependency[PaymentService],
        principal: NamedDependency[Principal],
        idempotency_key: IdempotencyKey,
    ) -> Response[Payment]:
        """Moves each invoice it pays to ``partially_paid`` or ``paid`` (emitting
        ``payment.received`` and ``invoice.status_changed``). Refused, with nothing
        written: amount 0 or an invoice amount 0 (422 ``invalid-amount``; negative is
        400), another currency than the customer's (422 ``currency-mismatch``), more
        than an invoice's outstanding or than the payment (422 ``over-application``),
        an unknown invoice or another customer's (422 ``unknown-invoice``), an unknown
        customer (422 ``unknown-customer``). A client bound to a customer paying for
        another answers 403 ``customer-not-permitted``."""
        result: Response[Any] = await payments.pay(principal, idempotency_key, data)
        return result

    @get(
        "/",
        operation_id="listPayments",
        summary="List payments, optionally of one customer or of some invoices",
        responses=problem_responses(),
        **requires("billing:read"),
    )
    async def list_payments(
        self,
        payments: NamedDependency[PaymentService],
        principal: NamedDependency[Principal],
        customer_id: CustomerFilter = None,
        invoice_id: InvoicesFilter = (),  # type: ignore[assignment]
        cursor: CursorParam = None,
        limit: LimitParam = 50,
    ) -> Page[Payment]:
        """``invoice_id`` (repeatable, up to 100): the payments applied to any of those
        invoices, a batch read. A bound client sees its own customer's payments only
        (another customer named: an empty page; another's invoice: nothing of it)."""
        return await payments.list(principal, customer_id, cursor, limit, tuple(invoice_id))

    @get(
        "/{payment_id:str}",
        operation_id="getPayment",
        summary="Read one payment (another customer's: 404)",
        responses=problem_responses(404),
        **requires("billing:read"),
    )
    async def get_payment(
        self,
        payment_id: IdParam,
        payments: NamedDependency[PaymentService],
        principal: NamedDependency[Principal],
    ) -> Payment:
        return await payments.get(principal, payment_id)
