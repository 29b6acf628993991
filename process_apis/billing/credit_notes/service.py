"""Price corrections (credit notes by billing administrators) and credit-note reads.

A correction names the invoice's lines and their corrected, lower unit prices. Each
line credits what its remaining units (invoiced - credited) were billed above the new
price, with the tax in proportion (``allocation.price_credit``). Its reference is
derived from what it says (invoice, skus, prices): the same correction posted again,
under any key, answers the same credit note (the ERP keeps one per invoice and
reference) and credits nothing more. A price that is not lower than what the units
are billed now (and is not such a repeat) is 422 ``price-not-lower``. The
Idempotency-Key replays the answer. Credits of one invoice take turns
(``claims.turn``, across workers; a turn not had within 10 s is 409 ``invoice-busy``)."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from litestar import Response

from process_apis.billing.credit_notes import claims, issuing
from process_apis.billing.credit_notes import repository as repo
from process_apis.billing.credit_notes.allocation import CreditLine, price_credit
from process_apis.billing.credit_notes.schemas import AdjustmentIn, CreditNote, from_erp
from process_apis.billing.erp import invoice as erp_invoice
from process_apis.billing.invoices.mirror import refresh_all
from process_apis.billing.invoices.schemas import from_erp as invoice_from_erp
from shared.auth.principal import Principal
from shared.db import Tx
from shared.http import Downstream
from shared.idempotency import IdempotencyStore, fingerprint
from shared.models import Page
from shared.paging import decode_cursor, keyset_page
from shared.refusals import Refusal


def adjustment_reference(invoice_id: str, data: AdjustmentIn) -> str:
    said = sorted((line.sku, line.unit_price.amount_minor) for line in data.lines)
    digest = hashlib.sha256(repr((invoice_id, said)).encode()).hexdigest()
    return f"ADJ-{digest[:40]}"


class CreditNoteService:
    def __init__(self, idempotency: IdempotencyStore, erp: Downstream) -> None:
        self.idempotency = idempotency
        self.db = idempotency.db
        self.erp = erp
        self._locks: dict[str, asyncio.Lock] = {}

    async def get(self, principal: Principal, credit_note_id: str) -> CreditNote:
        async with self.db.read() as conn:
            note = await repo.get(conn, credit_note_id)
        if note is None or not principal.may_see_customer(note.customer_id):
            raise Refusal(404, "credit-note-not-found", f"No credit note {credit_note_id}.")
        return note

    async def list(
        self,
        principal: Principal,
        invoice_ids: tuple[str, ...],
        customer_id: str | None,
        cursor: str | None,
        limit: int,
    ) -> Page[CreditNote]:
        if principal.customer_id is not None:
            if customer_id not in (None, principal.customer_id):
                return Page([], None)
            customer_id = principal.customer_id
        async with self.db.read() as conn:
            found = await repo.page(
                conn,
                invoice_ids=invoice_ids,
                customer_id=customer_id,
                after=decode_cursor(cursor),
                limit=limit + 1,
            )
        return keyset_page(found, limit, key=lambda n: n.credit_note_id)

    async def adjust(
        self, principal: Principal, key: str, invoice_id: str, data: AdjustmentIn
    ) -> Response[Any]:
        payload = {"invoice_id": invoice_id, "adjustment": data}
        async with self.db.transaction() as tx:
            answered = await self.idempotency.stored_answer(
                tx.conn, principal.client_id, key, fingerprint(payload)
            )
        if answered is not None:
            return answered
        lock = self._locks.setdefault(invoice_id, asyncio.Lock())
        try:
            async with lock, claims.turn(self.db, [invoice_id]):
                note = await self._correct(invoice_id, data)
        except claims.Busy as exc:
            raise Refusal(
                409, "invoice-busy", str(exc).capitalize() + ".", headers={"Retry-After": "1"}
            ) from exc
        fresh = await erp_invoice(self.erp, invoice_id)

        async def effect(tx: Tx) -> tuple[int, CreditNote]:
            await issuing.record(tx, note)
            if fresh is not None:
                await refresh_all(tx, [invoice_from_erp(fresh)])
            return 201, note

        return await self.idempotency.run_once(
            client_id=principal.client_id, key=key, payload=payload, effect=effect
        )

    async def _correct(self, invoice_id: str, data: AdjustmentIn) -> CreditNote:
        invoice = await erp_invoice(self.erp, invoice_id)
        if invoice is None:
            raise Refusal(404, "invoice-not-found", f"No invoice {invoice_id}.")
        currency = invoice["total"]["currency"]
        room = issuing.room_of(invoice)
        skus = [line.sku for line in data.lines]
        if len(set(skus)) != len(skus):
            raise Refusal(422, "duplicate-line", "Each sku may be corrected once per request.")
        reference = adjustment_reference(invoice_id, data)
        lines: list[CreditLine] = []
        for line in data.lines:
            if line.sku not in room.lines:
                raise Refusal(422, "not-on-invoice", f"{line.sku} is not on invoice {invoice_id}.")
            if line.unit_price.currency != currency:
                raise Refusal(
                    422,
                    "currency-mismatch",
                    f"Invoice {invoice_id} is in {currency}, not {line.unit_price.currency}.",
                )
            credit = price_credit(room.lines[line.sku], line.unit_price.amount_minor)
            if credit is None:
                made = await issuing.existing(self.erp, invoice_id=invoice_id, reference=reference)
                if made:  # this very correction is booked: the same credit note
                    return from_erp(made[0])
                current = room.lines[line.sku]
                raise Refusal(
                    422,
                    "price-not-lower",
                    f"{line.sku}: {line.unit_price.amount_minor} is not below what its "
                    f"{current.units_left} uncredited units are billed "
                    f"({current.net_left} {currency} net).",
                    extra={
                        "sku": line.sku,
                        "unit_price": line.unit_price.amount_minor,
                        "units": current.units_left,
                        "billed_net": current.net_left,
                    },
                )
            lines.append(credit)
        body = await issuing.issue(
            self.erp,
            invoice_id=invoice_id,
            currency=currency,
            reason="price_correction",
            reference=reference,
            note=data.reason,
            lines=lines,
            key=f"adjustment:{reference}",
        )
        return from_erp(body)
