"""Credit notes from returns, on ``return.dispositioned`` (decision 0034).

``prepare`` (outside the inbox transaction, idempotent calls only):

1. the creditable units of the disposition by the policy (``policy.py``); none: done;
2. the ERP's credit notes already made for this disposition (reference =
   ``disposition_id``) are taken as made: their units are not placed again, and their
   invoices are not used again (a crash between two notes of one disposition resumes);
3. the rest is placed on the order's invoices, oldest first, pro rata per line
   (``allocation.py``); units no invoice has room for are not invoiced yet: a wait
   (``NotYet``), nothing issued;
4. one ERP credit note per invoice, Idempotency-Key ``credit:{disposition_id}:{invoice_id}``
   (a 409 duplicate-credit-note fetches the ERP's), then each invoice read fresh.

Steps 2 to 4 run in the turn of the order's invoices (``claims.turn``; busy: a wait),
so a price correction of one of them never computes from the same figures.
``apply`` records the notes (unique per invoice and reference) and the invoices'
figures, emitting ``credit_note.issued`` and ``invoice.status_changed``, in the
transaction of the inbox row. However often the event comes (under any event id), the
ERP holds one note per invoice for the disposition and billing emits it once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from process_apis.billing.credit_notes import claims, issuing
from process_apis.billing.credit_notes.allocation import place_units
from process_apis.billing.credit_notes.policy import creditable_units
from process_apis.billing.credit_notes.schemas import CreditNote, from_erp
from process_apis.billing.erp import invoice as erp_invoice
from process_apis.billing.erp import read_all
from process_apis.billing.invoices.mirror import refresh_all
from process_apis.billing.invoices.schemas import Invoice
from process_apis.billing.invoices.schemas import from_erp as invoice_from_erp
from shared.db import Database, Tx
from shared.events.catalog import ReturnDispositioned
from shared.events.envelope import Event
from shared.events.inbox.handlers import NotYet
from shared.http import Downstream

log = logging.getLogger("tally.billing.credit_notes")


@dataclass
class Credited:
    notes: list[CreditNote] = field(default_factory=list)
    invoices: list[Invoice] = field(default_factory=list)


def cause_of(returned: ReturnDispositioned) -> str:
    """The reference of the disposition's credit notes (the return's id for a producer
    that names no disposition: one credit per return then)."""
    return returned.disposition_id or returned.return_id


class CreditOnReturn:
    def __init__(self, db: Database, erp: Downstream) -> None:
        self.db = db
        self.erp = erp

    async def prepare(self, event: Event) -> Credited | None:
        returned: ReturnDispositioned = event.payload(ReturnDispositioned)
        units = creditable_units(returned.lines)
        if not units:
            return None  # scrap only (or nothing final): no credit by the policy
        listed = await read_all(self.erp, "/erp/v1/invoices", {"order_id": returned.order_id})
        claimed = {b["invoice_id"] for b in listed}
        try:
            async with claims.turn(self.db, sorted(claimed), wait_seconds=2.0):
                return await self._credit(returned, units, claimed)
        except claims.Busy as exc:
            raise NotYet(str(exc)) from exc

    async def _credit(
        self, returned: ReturnDispositioned, units: dict[str, int], claimed: set[str]
    ) -> Credited:
        """Within the turn of the ``claimed`` invoices: what is left of them read afresh
        (an invoice issued meanwhile waits for the next delivery)."""
        reference = cause_of(returned)
        made = await issuing.existing(self.erp, reference=reference)
        made = [n for n in made if n.get("order_id") in (None, returned.order_id)]
        for note in made:
            for line in note["lines"]:
                if line["sku"] in units:
                    units[line["sku"]] -= int(line["quantity"])
        done = {note["invoice_id"] for note in made}
        bodies = await read_all(self.erp, "/erp/v1/invoices", {"order_id": returned.order_id})
        bodies = sorted(
            (b for b in bodies if b["invoice_id"] in claimed and b["invoice_id"] not in done),
            key=lambda b: (str(b.get("created_at", "")), b["invoice_id"]),
        )
        placement = place_units([issuing.room_of(b) for b in bodies], units)
        if placement.unplaced:
            raise NotYet(
                f"return {returned.return_id}: units not invoiced yet {placement.unplaced}"
            )
        currency = {b["invoice_id"]: b["total"]["currency"] for b in bodies}
        note_text = f"Return {returned.return_id}" + (
            f" (RMA {returned.rma_id})" if returned.rma_id else ""
        )
        for invoice_id, lines in placement.credits:
            made.append(
                await issuing.issue(
                    self.erp,
                    invoice_id=invoice_id,
                    currency=currency[invoice_id],
                    reason="return",
                    reference=reference,
                    note=note_text,
                    lines=lines,
                    key=f"credit:{reference}:{invoice_id}",
                )
            )
        credited = Credited()
        for body in made:
            credited.notes.append(
                from_erp(body, return_id=returned.return_id, rma_id=returned.rma_id)
            )
            fresh = await erp_invoice(self.erp, body["invoice_id"])
            if fresh is not None:
                credited.invoices.append(invoice_from_erp(fresh))
        return credited

    async def apply(self, tx: Tx, event: Event, prepared: Credited | None) -> None:
        if prepared is None:
            return
        for note in prepared.notes:
            await issuing.record(tx, note, event)
        await refresh_all(tx, prepared.invoices, event)
