"""Billing contract (v1): the shapes of docs/decisions/0002."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from shared.models import Money


class InvoiceLine(msgspec.Struct):
    sku: str
    quantity: int
    unit_price: Money
    amount: Money


class Invoice(msgspec.Struct):
    invoice_id: str
    order_id: str
    shipment_id: str
    customer_id: str
    status: Literal["issued"]
    total: Money
    lines: list[InvoiceLine]
    issued_at: datetime
