"""Issuing a credit note in the ERP once per cause, and recording it in billing.

The ERP keeps one credit note per (invoice, reference); billing sends each with an
Idempotency-Key derived from the same pair, so a retry replays and a second sender
under another key gets 409 ``duplicate-credit-note``, answered by fetching the one
the ERP holds. Recording it here is unique by the same pair, and emits
``credit_note.issued`` once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from process_apis.billing.credit_notes import repository as repo
from process_apis.billing.credit_notes.allocation import CreditLine, InvoiceRoom, LineRoom
from process_apis.billing.credit_notes.schemas import CreditNote
from process_apis.billing.erp import passed_through, problem_type, read_all
from process_apis.billing.invoices.mirror import EVENT_SOURCE, event_money
from shared.db import Tx
from shared.events.catalog import STREAM_BILLING, CreditNoteIssued, Line
from shared.events.envelope import Event, new_event
from shared.http import Downstream


def _minor(money: dict[str, Any] | None) -> int:
    return int(money["amount_minor"]) if money else 0


def room_of(invoice: dict[str, Any]) -> InvoiceRoom:
    """The ERP invoice's lines per sku, with what credit notes took of them."""
    lines: dict[str, LineRoom] = {}
    for line in invoice["lines"]:
        sku = line["sku"]
        known = lines.get(sku)
        room = LineRoom(
            sku=sku,
            quantity=int(line["quantity"]),
            net=_minor(line["amount"]),
            tax=_minor(line.get("tax")),
            credited_quantity=int(line.get("credited_quantity", 0)),
            credited_net=_minor(line.get("credited")),
            credited_tax=_minor(line.get("credited_tax")),
        )
        if known is not None:  # one sku on two lines: one room
            room = LineRoom(
                sku,
                known.quantity + room.quantity,
                known.net + room.net,
                known.tax + room.tax,
                known.credited_quantity + room.credited_quantity,
                known.credited_net + room.credited_net,
                known.credited_tax + room.credited_tax,
            )
        lines[sku] = room
    return InvoiceRoom(invoice["invoice_id"], lines)


async def existing(erp: Downstream, **filters: str) -> list[dict[str, Any]]:
    return await read_all(erp, "/erp/v1/credit-notes", filters)


async def issue(
    erp: Downstream,
    *,
    invoice_id: str,
    currency: str,
    reason: str,
    reference: str,
    note: str | None,
    lines: Sequence[CreditLine],
    key: str,
) -> dict[str, Any]:
    """The ERP's credit note for (invoice, reference): issued now, or the one it has."""
    body: dict[str, Any] = {
        "invoice_id": invoice_id,
        "reason": reason,
        "reference": reference,
        "lines": [
            {
                "sku": line.sku,
                "quantity": line.quantity,
                "amount": {"amount_minor": line.net, "currency": currency},
                "tax": {"amount_minor": line.tax, "currency": currency},
            }
            for line in lines
        ],
    }
    if note:
        body["note"] = note
    response = await erp.request("POST", "/erp/v1/credit-notes", json=body, idempotency_key=key)
    if response.status_code in (200, 201):
        created: dict[str, Any] = response.json()
        return created
    if response.status_code == 409 and problem_type(response) == "/problems/duplicate-credit-note":
        for found in await existing(erp, invoice_id=invoice_id, reference=reference):
            return found
    raise passed_through(response, f"credit note {reference} on invoice {invoice_id}")


def issued_event(note: CreditNote, causation: Event | None) -> Event:
    return new_event(
        source=EVENT_SOURCE,
        type_="credit_note.issued",
        subject=f"credit_note:{note.credit_note_id}",
        sequence=1,
        payload=CreditNoteIssued(
            credit_note_id=note.credit_note_id,
            erp_credit_note_id=note.credit_note_id,
            return_id=note.return_id or "",
            order_id=note.order_id,
            customer_id=note.customer_id,
            total=event_money(note.total),
            invoice_id=note.invoice_id,
            reason=note.reason,
            rma_id=note.rma_id,
            tax=event_money(note.tax),
            lines=[Line(line.sku, line.quantity) for line in note.lines],
        ),
        causation=causation,
    )


async def record(tx: Tx, note: CreditNote, causation: Event | None = None) -> bool:
    """Records the note (once) and emits ``credit_note.issued`` with it."""
    if not await repo.insert_note(tx.conn, note):
        return False
    tx.emit(STREAM_BILLING, issued_event(note, causation))
    return True
