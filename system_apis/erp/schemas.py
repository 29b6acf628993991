"""Canonical ERP contract (v1)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, UnsetType

from shared.models import (
    AmountMinor,
    Currency,
    Identifier,
    ItemKey,
    ItemRefusal,
    Money,
    MoneyTotal,
    Name,
    Quantity,
    Sku,
    Text,
)

Uom = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{1,8}$", examples=["EA"])]


class ItemIn(msgspec.Struct, forbid_unknown_fields=True):
    sku: Sku
    name: Name
    unit_price: Money
    base_uom: Uom = "EA"
    tax_class: Identifier = "standard"  # billing's rate table keys on it


class Item(msgspec.Struct):
    sku: str
    name: str
    base_uom: str
    unit_price: Money
    tax_class: str
    created_at: datetime


CustomerStatus = Literal["active", "blocked"]
PaymentTerms = Literal["prepaid", "net15", "net30", "net60"]
CustomerGroup = Identifier
Region = Identifier
Country = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[A-Z]{2}$",
        description="ISO 3166-1 alpha-2, an assigned code (another is 422 unknown-country)",
        examples=["DE"],
    ),
]
# Printed on labels and carrier documents: no control characters.
AddressLine = Annotated[
    str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[^\u0000-\u001f\u007f]+$")
]
PostalCode = Annotated[
    str, msgspec.Meta(min_length=1, max_length=20, pattern=r"^[A-Za-z0-9][A-Za-z0-9 \-]*$")
]


class Address(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    line1: AddressLine
    city: AddressLine
    postal_code: PostalCode
    country: Country
    line2: AddressLine | None = None


class ShipTo(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    ship_to_id: Identifier
    name: AddressLine
    address: Address
    region: Region


ShipTos = Annotated[
    list[ShipTo],
    msgspec.Meta(max_length=50, description="Distinct ship_to_ids (422 duplicate-ship-to)"),
]


class CustomerIn(msgspec.Struct, forbid_unknown_fields=True):
    customer_id: Identifier
    name: Name
    credit_limit: Money
    status: CustomerStatus = "active"
    customer_group: CustomerGroup | None = None
    payment_terms: PaymentTerms = "net30"
    ship_tos: ShipTos = msgspec.field(default_factory=list)


class CustomerPatch(msgspec.Struct, forbid_unknown_fields=True):
    """The fields to change; an absent one keeps its value, ``customer_group: null``
    clears the group, ``ship_tos`` replaces the whole list. The credit limit's currency
    cannot change."""

    name: Name | UnsetType = UNSET
    credit_limit: Money | UnsetType = UNSET
    status: CustomerStatus | UnsetType = UNSET
    customer_group: CustomerGroup | UnsetType | None = UNSET
    payment_terms: PaymentTerms | UnsetType = UNSET
    ship_tos: ShipTos | UnsetType = UNSET


class Customer(msgspec.Struct):
    customer_id: str
    name: str
    credit_limit: Money
    created_at: datetime
    status: CustomerStatus
    customer_group: str | None
    payment_terms: PaymentTerms
    ship_tos: list[ShipTo]
    updated_at: datetime


class CustomerPriceIn(msgspec.Struct, forbid_unknown_fields=True):
    unit_price: Money


class CustomerPrice(msgspec.Struct):
    customer_id: str
    sku: str
    unit_price: Money


class PriceForCustomer(msgspec.Struct):
    """The price a customer pays for a sku: its own (``customer``) or the list price."""

    sku: str
    unit_price: Money
    source: Literal["customer", "list"]


class SignedMoney(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Money's shape for an amount that may be negative (credit still available)."""

    amount_minor: Annotated[int, msgspec.Meta(ge=-(10**18), le=10**18)]
    currency: Currency


class CreditExposure(msgspec.Struct):
    """``exposure`` = ``open_orders`` (open sales orders' net value not yet invoiced) +
    ``unpaid_invoices`` (the invoices' outstanding less unapplied credit, at least 0);
    ``available`` = ``credit_limit`` - ``exposure`` (may be
    negative). All in the credit limit's currency."""

    customer_id: str
    credit_limit: Money
    open_orders: MoneyTotal
    unpaid_invoices: MoneyTotal
    exposure: MoneyTotal
    available: SignedMoney


SalesOrderStatus = Literal["open", "closed", "cancelled"]
Count = Annotated[int, msgspec.Meta(ge=0, le=1_000_000_000)]
Version = Annotated[int, msgspec.Meta(ge=1, le=2**53)]


class SalesOrderLineIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``cancelled`` <= ``quantity`` (422 ``invalid-line`` otherwise)."""

    sku: Sku
    quantity: Count
    unit_price_minor: AmountMinor
    cancelled: Count = 0


class SalesOrderIn(msgspec.Struct, forbid_unknown_fields=True):
    """The whole state of a sales order at ``version``: a version the ERP holds already
    (or an older one) changes nothing."""

    customer_id: Identifier
    currency: Currency
    version: Version
    status: SalesOrderStatus
    lines: Annotated[list[SalesOrderLineIn], msgspec.Meta(min_length=1, max_length=200)]


class SalesOrderLine(msgspec.Struct):
    sku: str
    quantity: int
    cancelled: int
    unit_price_minor: int


class SalesOrder(msgspec.Struct):
    """``value`` = sum((quantity - cancelled) * unit price); ``invoiced`` = the ERP's
    invoices of the order; ``open_value`` = max(0, value - invoiced) while open, else 0."""

    order_id: str
    customer_id: str
    currency: str
    version: int
    status: SalesOrderStatus
    lines: list[SalesOrderLine]
    value: Money
    invoiced: Money
    open_value: Money
    updated_at: datetime


class SalesOrderBatchItemIn(SalesOrderIn, forbid_unknown_fields=True):
    """One sales order of a batch: its id and its whole state at ``version``."""

    order_id: Identifier


class SalesOrderBatchIn(msgspec.Struct, forbid_unknown_fields=True):
    sales_orders: Annotated[list[SalesOrderBatchItemIn], msgspec.Meta(min_length=1, max_length=100)]


class SalesOrderBatchResult(msgspec.Struct):
    """Per sales order, in the batch's order: the stored order, or its refusal."""

    order_id: str
    sales_order: SalesOrder | None = None
    refusal: ItemRefusal | None = None


class SalesOrderBatch(msgspec.Struct):
    results: list[SalesOrderBatchResult]


class InvoiceLineIn(msgspec.Struct, forbid_unknown_fields=True):
    """``unit_price`` is the sales order line's; ``tax`` is the line's tax as billing
    computed it (the ERP books it, it does not compute it); none is 0."""

    sku: Sku
    quantity: Quantity
    unit_price: Money
    tax: Money | None = None
    tax_code: Identifier | None = None


class InvoiceIn(msgspec.Struct, forbid_unknown_fields=True):
    """Evidence of one shipment of one booked sales order: the shipment's goods issue
    must be posted (409 ``shipment-not-posted``), the order booked (409
    ``order-not-booked``); per sku at most the goods-issued quantity (422
    ``over-billing``) at the order's price (422 ``price-mismatch``)."""

    order_id: Identifier
    shipment_id: Identifier
    customer_id: Identifier
    lines: Annotated[list[InvoiceLineIn], msgspec.Meta(min_length=1, max_length=500)]


InvoiceStatus = Literal["issued", "partially_paid", "paid", "credited"]


class InvoiceLine(msgspec.Struct):
    """``amount`` = quantity * unit price (net); ``credited`` the net and
    ``credited_tax`` the tax credited on this line by credit notes."""

    line_no: int
    sku: str
    quantity: int
    unit_price: Money
    amount: Money
    tax: Money
    tax_code: str | None
    credited_quantity: int
    credited: Money
    credited_tax: Money


class Invoice(msgspec.Struct):
    """``total`` = ``subtotal`` (net) + ``tax``; ``outstanding`` = total - credited -
    paid; ``overdue``: outstanding > 0 and ``due_date`` before today (UTC). Status:
    outstanding 0 and paid > 0 ``paid``; outstanding 0 and nothing paid ``credited``;
    paid > 0 ``partially_paid``; else ``issued``."""

    invoice_id: str
    order_id: str
    shipment_id: str
    customer_id: str
    status: InvoiceStatus
    subtotal: Money
    tax: Money
    total: Money
    paid: Money
    credited: Money
    outstanding: Money
    payment_terms: str
    due_date: date
    overdue: bool
    lines: list[InvoiceLine]
    created_at: datetime


CreditReason = Literal["return", "price_correction", "other"]


class CreditNoteLineIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``quantity`` units returned (0 for a price correction), ``amount`` the net and
    ``tax`` the tax credited."""

    sku: Sku
    quantity: Count
    amount: Money
    tax: Money


class CreditNoteIn(msgspec.Struct, forbid_unknown_fields=True):
    """A credit against one invoice, once per (invoice_id, reference): ``reference``
    names its cause (a disposition id, an adjustment id)."""

    invoice_id: Identifier
    reason: CreditReason
    reference: Identifier
    lines: Annotated[list[CreditNoteLineIn], msgspec.Meta(min_length=1, max_length=500)]
    note: Text | None = None


class CreditNoteLine(msgspec.Struct):
    sku: str
    quantity: int
    amount: Money
    tax: Money


class CreditNote(msgspec.Struct):
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


class PaymentApplicationIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    invoice_id: Identifier
    amount: Money


class PaymentIn(msgspec.Struct, forbid_unknown_fields=True):
    """A remittance. With ``applications`` it is applied to those invoices (each at most
    its outstanding); without, to the customer's open invoices, oldest due date first.
    What is left is unapplied (the customer's credit)."""

    customer_id: Identifier
    amount: Money
    reference: Text | None = None
    received_on: date | None = None
    applications: (
        Annotated[list[PaymentApplicationIn], msgspec.Meta(min_length=1, max_length=500)] | None
    ) = None


class PaymentApplication(msgspec.Struct):
    invoice_id: str
    amount: Money


class Payment(msgspec.Struct):
    """``applied`` is what the payment currently pays of each invoice: a credit note on
    a paid invoice moves the credited part back to ``unapplied``."""

    payment_id: str
    customer_id: str
    amount: Money
    reference: str | None
    received_on: date
    applied: list[PaymentApplication]
    unapplied: Money
    created_at: datetime


class CustomerBalance(msgspec.Struct):
    """``balance`` = ``invoiced`` - ``credited`` - ``paid`` (the invoices' outstanding);
    ``net`` = balance - ``unapplied_credit`` (negative: the customer is owed money)."""

    customer_id: str
    balance: MoneyTotal
    invoiced: MoneyTotal
    credited: MoneyTotal
    paid: MoneyTotal
    open_invoices: int
    unapplied_credit: MoneyTotal
    overdue: MoneyTotal
    net: SignedMoney
    as_of: datetime


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
    a goods receipt may close an ASN (``asn_id``) or receive against a purchase order;
    a goods issue may name the sales order it ships (``order_id``), which its
    ``goods_issue.posted`` event carries to billing."""

    kind: PostingKind
    reference: Reference
    warehouse_id: Identifier
    lines: Annotated[list[PostingLineIn], msgspec.Meta(min_length=1, max_length=500)]
    asn_id: Identifier | None = None
    purchase_order_id: Identifier | None = None
    order_id: Identifier | None = None


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
    order_id: str | None = None


class PostingBatchItemIn(msgspec.Struct, forbid_unknown_fields=True):
    """One posting of a batch, with the Idempotency-Key its single post would carry."""

    idempotency_key: ItemKey
    posting: PostingIn


class PostingBatchIn(msgspec.Struct, forbid_unknown_fields=True):
    """Up to 100 postings; their keys differ (else 422 ``duplicate-idempotency-key``)."""

    postings: Annotated[list[PostingBatchItemIn], msgspec.Meta(min_length=1, max_length=100)]


class PostingBatchResult(msgspec.Struct):
    """Per item, in the batch's order: its posting (booked, or replayed for a key seen
    before), or its refusal."""

    idempotency_key: str
    posting: Posting | None = None
    refusal: ItemRefusal | None = None


class PostingBatch(msgspec.Struct):
    results: list[PostingBatchResult]


class FinancialStock(msgspec.Struct):
    """What the ERP has booked on hand for a sku at a warehouse (lags the WMS until
    the warehouse's facts are posted)."""

    sku: str
    warehouse_id: str
    on_hand: int
    updated_at: datetime
