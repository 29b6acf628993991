"""Credit notes: what is taken back of an invoice (units, net, tax per sku), once per
cause (``reference``: a disposition, an adjustment)."""

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
from system_apis.erp.schemas import CreditNote, CreditNoteIn

InvoiceQuery = Annotated[str | None, query_filter(ID_PATTERN, name="invoice_id")]
CustomerQuery = Annotated[str | None, query_filter(ID_PATTERN, name="customer_id")]
ReferenceQuery = Annotated[str | None, query_filter(ID_PATTERN, name="reference")]


class CreditNoteController(Controller):
    path = "/erp/v1/credit-notes"
    tags = ["credit-notes"]

    @post(
        "/",
        operation_id="createCreditNote",
        summary="Credit part of an invoice (at most what it invoiced; once per reference)",
        responses=problem_responses(409, 422),
        **requires("erp:write"),
    )
    async def create_credit_note(
        self,
        data: JSONBody[CreditNoteIn],
        erp: NamedDependency[ErpPort],
        idempotency: NamedDependency[IdempotencyStore],
        principal: NamedDependency[Principal],
        idempotency_key: IdempotencyKey,
    ) -> Response[CreditNote]:
        """Per sku, credited units, net and tax stay within the invoice's (422
        ``over-credit``); 422 ``unknown-invoice``, ``not-on-invoice``,
        ``currency-mismatch``, ``empty-credit``; a second note for the same
        (invoice_id, reference) under another key is 409 ``duplicate-credit-note``
        (its ``credit_note_id`` in the problem). A credit beyond what is still unpaid
        moves the payments' surplus to their unapplied amount."""

        async def effect(tx: Tx) -> tuple[int, CreditNote]:
            return 201, await erp.create_credit_note(tx, data)

        return await idempotency.run_once(
            client_id=principal.client_id, key=idempotency_key, payload=data, effect=effect
        )

    @get(
        "/",
        operation_id="listCreditNotes",
        summary="List credit notes, optionally of an invoice, a customer or a reference",
        responses=problem_responses(),
        **requires("erp:read"),
    )
    async def list_credit_notes(
        self,
        erp: NamedDependency[ErpPort],
        principal: NamedDependency[Principal],
        invoice_id: InvoiceQuery = None,
        customer_id: CustomerQuery = None,
        reference: ReferenceQuery = None,
        cursor: CursorParam = None,
        limit: LimitParam = 50,
    ) -> Page[CreditNote]:
        found = await erp.list_credit_notes(
            invoice_id=invoice_id,
            customer_id=customer_id,
            reference=reference,
            after=decode_cursor(cursor),
            limit=limit + 1,
        )
        page = keyset_page(found, limit, key=lambda c: c.credit_note_id)
        visible = [c for c in page.items if principal.may_see_customer(c.customer_id)]
        return Page(visible, page.next_cursor)

    @get(
        "/{credit_note_id:str}",
        operation_id="getCreditNote",
        summary="Read one credit note",
        responses=problem_responses(404),
        **requires("erp:read"),
    )
    async def get_credit_note(
        self,
        credit_note_id: IdParam,
        erp: NamedDependency[ErpPort],
        principal: NamedDependency[Principal],
    ) -> CreditNote:
        found = await erp.get_credit_note(credit_note_id)
        if found is None or not principal.may_see_customer(found.customer_id):
            raise Refusal(404, "credit-note-not-found", f"No credit note {credit_note_id}.")
        return found
