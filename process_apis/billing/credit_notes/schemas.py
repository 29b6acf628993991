"""Credit notes as billing answers them (the ERP's, with the return they follow)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from shared.models import Money, Sku, Text

CreditReason = Literal["return", "price_correction", "other"]


class CreditNoteLine(msgspec.Struct):
    """``quantity`` units taken back (0 for a price correction), ``amount`` the net and
    ``tax`` the tax credited."""

    sku: str
    quantity: int
    amount: Money
    tax: Money


class CreditNote(msgspec.Struct):
    """``reference`` names the cause: the disposition of a return, or the price
    adjustment. ``total`` = ``subtotal`` + ``tax``."""

    credit_note_id: str
    invoice_id: str
    order_id: str
    customer_id: str
    reason: CreditReason
    reference: str
    note: str | None
    lines: list[CreditNoteLine]
    subtotal: Money
    tax: Money
    total: Money
    created_at: datetime
    return_id: str | None = None
    rma_id: str | None = None


class PriceCorrectionLine(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The corrected (lower) unit price of the invoice's line of ``sku``."""

    sku: Sku
    unit_price: Money


class AdjustmentIn(msgspec.Struct, forbid_unknown_fields=True):
    lines: Annotated[list[PriceCorrectionLine], msgspec.Meta(min_length=1, max_length=500)]
    reason: Text


def from_erp(
    body: dict[str, Any], *, return_id: str | None = None, rma_id: str | None = None
) -> CreditNote:
    note = msgspec.convert(
        {k: v for k, v in body.items() if k in CreditNote.__struct_fields__},
        CreditNote,
        strict=False,
    )
    note.return_id = return_id
    note.rma_id = rma_id
    return note
