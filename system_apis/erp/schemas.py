"""Canonical ERP contract (v1)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from shared.models import Identifier, Money, Name, Quantity, Sku

Uom = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{1,8}$", examples=["EA"])]


class ItemIn(msgspec.Struct, forbid_unknown_fields=True):
    sku: Sku
    name: Name
    unit_price: Money
    base_uom: Uom = "EA"


class Item(msgspec.Struct):
    sku: str
    name: str
    base_uom: str
    unit_price: Money
    created_at: datetime


class CustomerIn(msgspec.Struct, forbid_unknown_fields=True):
    customer_id: Identifier
    name: Name
    credit_limit: Money


class Customer(msgspec.Struct):
    customer_id: str
    name: str
    credit_limit: Money
    created_at: datetime


class InvoiceLineIn(msgspec.Struct, forbid_unknown_fields=True):
    sku: Sku
    quantity: Quantity
    unit_price: Money


class InvoiceIn(msgspec.Struct, forbid_unknown_fields=True):
    order_id: Identifier
    shipment_id: Identifier
    customer_id: Identifier
    lines: Annotated[list[InvoiceLineIn], msgspec.Meta(min_length=1, max_length=500)]


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
    created_at: datetime
