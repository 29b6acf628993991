"""Payments: a remittance booked in the ERP, recorded in billing once, the invoices it
touched refreshed, and the portal told (decision 0034).

The ERP call carries an Idempotency-Key derived from (client, Idempotency-Key), so a
retry of the same request books nothing new there either; the ERP's refusals
(``invalid-amount``, ``currency-mismatch``, ``over-application``, ``unknown-invoice``,
``unknown-customer``) come back as they are, and nothing is written then."""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec
from litestar import Response

from process_apis.billing.erp import invoices as erp_invoices
from process_apis.billing.erp import passed_through
from process_apis.billing.invoices.mirror import EVENT_SOURCE, event_money, refresh_all
from process_apis.billing.invoices.schemas import from_erp as invoice_from_erp
from process_apis.billing.payments import repository as repo
from process_apis.billing.payments.schemas import Payment, PaymentIn
from shared.auth.principal import Principal
from shared.db import Tx
from shared.events.catalog import STREAM_BILLING, AppliedAmount, PaymentReceived
from shared.events.envelope import new_event
from shared.http import Downstream
from shared.idempotency import IdempotencyStore, fingerprint
from shared.models import Page
from shared.paging import decode_cursor, keyset_page
from shared.refusals import Refusal


def erp_key(client_id: str, key: str) -> str:
    digest = hashlib.sha256(f"{client_id}\n{key}".encode()).hexdigest()
    return f"billing-payment:{digest}"


def erp_body(data: PaymentIn) -> Any:
    body: dict[str, Any] = {"customer_id": data.customer_id, "amount": data.amount}
    if data.reference is not None:
        body["reference"] = data.reference
    if data.received_on is not None:
        body["received_on"] = data.received_on.isoformat()
    if data.invoices is not None:
        body["applications"] = data.invoices
    return msgspec.to_builtins(body)


def _checked(data: PaymentIn) -> None:
    """The refusals billing can tell without the ERP (the same types the ERP answers)."""
    if data.amount.amount_minor == 0:
        raise Refusal(422, "invalid-amount", "A payment's amount must be more than 0.")
    named = data.invoices or []
    ids = [line.invoice_id for line in named]
    if len(set(ids)) != len(ids):
        raise Refusal(422, "duplicate-application", "Each invoice may be named once.")
    for line in named:
        if line.amount.amount_minor == 0:
            raise Refusal(
                422, "invalid-amount", f"The amount applied to {line.invoice_id} must be > 0."
            )
        if line.amount.currency != data.amount.currency:
            raise Refusal(
                422,
                "currency-mismatch",
                f"The payment is in {data.amount.currency}, not {line.amount.currency}.",
            )
    applied = sum(line.amount.amount_minor for line in named)
    if applied > data.amount.amount_minor:
        raise Refusal(
            422,
            "over-application",
            f"{applied} applied to invoices exceeds the payment's {data.amount.amount_minor}.",
            extra={"applied": applied, "amount": data.amount.amount_minor},
        )


class PaymentService:
    def __init__(self, idempotency: IdempotencyStore, erp: Downstream) -> None:
        self.idempotency = idempotency
        self.db = idempotency.db
        self.erp = erp

    async def pay(self, principal: Principal, key: str, data: PaymentIn) -> Response[Any]:
        if principal.customer_id is not None and data.customer_id != principal.customer_id:
            raise Refusal(
                403,
                "customer-not-permitted",
                f"This client may record payments of customer {principal.customer_id} only.",
            )
        fp = fingerprint(data)
        async with self.db.transaction() as tx:
            answered = await self.idempotency.stored_answer(tx.conn, principal.client_id, key, fp)
        if answered is not None:
            return answered
        _checked(data)
        response = await self.erp.request(
            "POST",
            "/erp/v1/payments",
            json=erp_body(data),
            idempotency_key=erp_key(principal.client_id, key),
        )
        if response.status_code not in (200, 201):
            raise passed_through(response, "the payment")
        payment = msgspec.convert(response.json(), Payment, strict=False)
        touched = [applied.invoice_id for applied in payment.applied]
        fresh = [invoice_from_erp(found) for found in await erp_invoices(self.erp, touched)]

        async def effect(tx: Tx) -> tuple[int, Payment]:
            if await repo.insert_payment(tx.conn, payment):
                tx.emit(STREAM_BILLING, received_event(payment))
            await refresh_all(tx, fresh)
            return 201, payment

        return await self.idempotency.run_once(
            client_id=principal.client_id, key=key, payload=data, effect=effect
        )

    async def get(self, principal: Principal, payment_id: str) -> Payment:
        async with self.db.read() as conn:
            payment = await repo.get(conn, payment_id)
        if payment is None or not principal.may_see_customer(payment.customer_id):
            raise Refusal(404, "payment-not-found", f"No payment {payment_id}.")
        return payment

    async def list(
        self,
        principal: Principal,
        customer_id: str | None,
        cursor: str | None,
        limit: int,
        invoice_ids: tuple[str, ...] = (),
    ) -> Page[Payment]:
        if principal.customer_id is not None:
            if customer_id not in (None, principal.customer_id):
                return Page([], None)
            customer_id = principal.customer_id
        async with self.db.read() as conn:
            found = await repo.page(
                conn,
                customer_id=customer_id,
                after=decode_cursor(cursor),
                limit=limit + 1,
                invoice_ids=invoice_ids,
            )
        return keyset_page(found, limit, key=lambda p: p.payment_id)


def received_event(payment: Payment) -> Any:
    return new_event(
        source=EVENT_SOURCE,
        type_="payment.received",
        subject=f"payment:{payment.payment_id}",
        sequence=1,
        payload=PaymentReceived(
            payment_id=payment.payment_id,
            erp_payment_id=payment.payment_id,
            customer_id=payment.customer_id,
            amount=event_money(payment.amount),
            applied=[AppliedAmount(a.invoice_id, event_money(a.amount)) for a in payment.applied],
            unapplied=event_money(payment.unapplied),
        ),
    )
