"""Canonical ERP contract (v1)."""

from __future__ import annotations

from datetime import date, datetime
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


PoStatus = Literal["open", "closed", "cancelled"]
PostingKind = Literal["goods_receipt", "goods_issue", "adjustment", "return_receipt", "scrap"]
QuantityDelta = Annotated[int, msgspec.Meta(ge=-1_000_000_000, le=1_000_000_000)]
Reference = Identifier


class PurchaseOrderLineIn(msgspec.Struct, forbid_unknown_fields=True):
    sku: Sku
    warehouse_id: Identifier
    quantity: Quantity
    expected_date: date | None = None


class PurchaseOrderIn(msgspec.Struct, forbid_unknown_fields=True):
    supplier_id: Identifier
    lines: Annotated[list[PurchaseOrderLineIn], msgspec.Meta(min_length=1, max_length=500)]


class PurchaseOrderLine(msgspec.Struct):
    """``open_quantity`` = ordered - in_transit (on ASNs) - received: still to ship."""

    sku: str
    warehouse_id: str
    ordered: int
    in_transit: int
    received: int
    open_quantity: int
    expected_date: date | None


class PurchaseOrder(msgspec.Struct):
    purchase_order_id: str
    supplier_id: str
    status: PoStatus
    lines: list[PurchaseOrderLine]
    created_at: datetime
    updated_at: datetime


class AsnLineIn(msgspec.Struct, forbid_unknown_fields=True):
    sku: Sku
    quantity: Quantity


class AsnIn(msgspec.Struct, forbid_unknown_fields=True):
    purchase_order_id: Identifier
    warehouse_id: Identifier
    expected_date: date
    lines: Annotated[list[AsnLineIn], msgspec.Meta(min_length=1, max_length=500)]


class AsnLine(msgspec.Struct):
    sku: str
    quantity: int


class Asn(msgspec.Struct):
    asn_id: str
    purchase_order_id: str
    warehouse_id: str
    status: Literal["in_transit", "received"]
    expected_date: date
    lines: list[AsnLine]
    receipt_id: str | None
    created_at: datetime
    updated_at: datetime


class PostingLineIn(msgspec.Struct, forbid_unknown_fields=True):
    sku: Sku
    quantity_delta: QuantityDelta


class PostingIn(msgspec.Struct, forbid_unknown_fields=True):
    """A warehouse fact booked in the ERP's financial inventory. goods_receipt and
    return_receipt lines are positive, goods_issue and scrap lines negative, adjustment
    lines either (never zero). ``reference`` names the warehouse document (receipt,
    shipment, return, scrap or adjustment id);
    a goods receipt may close an ASN (``asn_id``) or receive against a purchase order."""

    kind: PostingKind
    reference: Reference
    warehouse_id: Identifier
    lines: Annotated[list[PostingLineIn], msgspec.Meta(min_length=1, max_length=500)]
    asn_id: Identifier | None = None
    purchase_order_id: Identifier | None = None


class PostingLine(msgspec.Struct):
    sku: str
    quantity_delta: int


class Posting(msgspec.Struct):
    posting_id: str
    kind: PostingKind
    reference: str
    warehouse_id: str
    lines: list[PostingLine]
    posted_at: datetime
    asn_id: str | None = None
    purchase_order_id: str | None = None


class FinancialStock(msgspec.Struct):
    """What the ERP has booked on hand for a sku at a warehouse (lags the WMS until
    the warehouse's facts are posted)."""

    sku: str
    warehouse_id: str
    on_hand: int
    updated_at: datetime
