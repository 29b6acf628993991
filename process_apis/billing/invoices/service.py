"""Reading invoices, with the rule that a client bound to a customer sees only that
customer's invoices."""

from __future__ import annotations

from collections.abc import Sequence

from process_apis.billing.invoices import repository as repo
from process_apis.billing.invoices.schemas import Invoice
from shared.auth.principal import Principal
from shared.db import Database
from shared.models import Page
from shared.paging import decode_cursor, keyset_page
from shared.refusals import Refusal


class InvoiceService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, principal: Principal, invoice_id: str) -> Invoice:
        async with self.db.read() as conn:
            invoice = await repo.get(conn, invoice_id)
        if invoice is None or not principal.may_see_customer(invoice.customer_id):
            raise Refusal(404, "invoice-not-found", f"No invoice {invoice_id}.")
        return invoice

    async def list(
        self,
        principal: Principal,
        order_ids: list[str],
        customer_id: str | None,
        cursor: str | None,
        limit: int,
        statuses: Sequence[str] = (),
    ) -> Page[Invoice]:
        if principal.customer_id is not None:
            if customer_id not in (None, principal.customer_id):
                return Page([], None)
            customer_id = principal.customer_id
        async with self.db.read() as conn:
            found = await repo.page(
                conn,
                order_ids=order_ids,
                customer_id=customer_id,
                after=decode_cursor(cursor),
                limit=limit + 1,
                statuses=statuses,
            )
        return keyset_page(found, limit, key=lambda i: i.invoice_id)
