"""The invoice batch (``POST /erp/v1/invoices/batch``): each item an invoice with the
Idempotency-Key its single ``POST /erp/v1/invoices`` would carry, each answered as that
single post would answer it."""

from __future__ import annotations

from typing import Annotated

import msgspec

from shared.models import ItemKey, ItemRefusal
from system_apis.erp.schemas import Invoice, InvoiceIn


class InvoiceBatchItemIn(msgspec.Struct, forbid_unknown_fields=True):
    """One invoice of a batch, with the Idempotency-Key its single post would carry."""

    idempotency_key: ItemKey
    invoice: InvoiceIn


class InvoiceBatchIn(msgspec.Struct, forbid_unknown_fields=True):
    """Up to 100 invoices; their keys differ (else 422 ``duplicate-idempotency-key``)."""

    invoices: Annotated[list[InvoiceBatchItemIn], msgspec.Meta(min_length=1, max_length=100)]


class InvoiceBatchResult(msgspec.Struct):
    """Per item, in the batch's order: its invoice (issued, or replayed for a key seen
    before), or its refusal."""

    idempotency_key: str
    invoice: Invoice | None = None
    refusal: ItemRefusal | None = None


class InvoiceBatch(msgspec.Struct):
    results: list[InvoiceBatchResult]
