from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from process_apis.billing.credit_notes.schemas import AdjustmentIn, CreditNote
from process_apis.billing.credit_notes.service import CreditNoteService
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
    query_filter(ID_PATTERN, name="customer_id", description="Only this customer's notes."),
]
InvoiceFilter = Annotated[
    list[Identifier],
    query_filter(
        ID_PATTERN,
        name="invoice_id",
        many=True,
        description="Only the notes of these invoices (repeatable, up to 100).",
    ),
]


class CreditNoteController(Controller):
    path = "/billing/v1/credit-notes"
    tags = ["credit-notes"]

    @get(
        "/",
        operation_id="listCreditNotes",
        summary="List credit notes, optionally of some invoices or one customer",
        responses=problem_responses(),
        **requires("billing:read"),
    )
    async def list_credit_notes(
        self,
        credit_notes: NamedDependency[CreditNoteService],
        principal: NamedDependency[Principal],
        invoice_id: InvoiceFilter = (),  # type: ignore[assignment]
        customer_id: CustomerFilter = None,
        cursor: CursorParam = None,
        limit: LimitParam = 50,
    ) -> Page[CreditNote]:
        """``invoice_id`` (repeatable, up to 100): a batch read of those invoices' notes.
        A client bound to a customer sees that customer's notes only."""
        return await credit_notes.list(principal, tuple(invoice_id), customer_id, cursor, limit)

    @get(
        "/{credit_note_id:str}",
        operation_id="getCreditNote",
        summary="Read one credit note (another customer's: 404)",
        responses=problem_responses(404),
        **requires("billing:read"),
    )
    async def get_credit_note(
        self,
        credit_note_id: IdParam,
        credit_notes: NamedDependency[CreditNoteService],
        principal: NamedDependency[Principal],
    ) -> CreditNote:
        return await credit_notes.get(principal, credit_note_id)


class AdjustmentController(Controller):
    path = "/billing/v1/invoices"
    tags = ["credit-notes"]

    @post(
        "/{invoice_id:str}/adjustments",
        operation_id="adjustInvoicePrices",
        summary="Correct an invoice's unit prices downwards: a price-correction credit note",
        status_code=201,
        responses=problem_responses(404, 409, 422, 502, 503),
        **requires("billing:admin"),
    )
    async def adjust(
        self,
        invoice_id: IdParam,
        data: JSONBody[AdjustmentIn],
        credit_notes: NamedDependency[CreditNoteService],
        principal: NamedDependency[Principal],
        idempotency_key: IdempotencyKey,
    ) -> Response[CreditNote]:
        """Credits (old - new price) for each line's units not yet credited, plus the
        tax in proportion. The same correction posted again (under any key) answers
        the credit note it made, crediting nothing more; a price that is not lower than
        what those units are billed is 422 ``price-not-lower``; a sku not on the
        invoice 422 ``not-on-invoice``; another currency 422 ``currency-mismatch``; a
        sku twice 422 ``duplicate-line``; an unknown invoice 404."""
        result: Response[Any] = await credit_notes.adjust(
            principal, idempotency_key, invoice_id, data
        )
        return result
