"""The ERP port: what the system API needs from an ERP, in canonical terms. The
reference adapter keeps it on SQL; a vendor adapter maps its own dialect onto it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from shared.db import Tx
from shared.models import Money
from shared.refusals import Refusal
from system_apis.erp.schemas import (
    Asn,
    AsnIn,
    CreditExposure,
    CreditNote,
    CreditNoteIn,
    Customer,
    CustomerBalance,
    CustomerIn,
    CustomerPatch,
    CustomerPrice,
    FinancialStock,
    Invoice,
    InvoiceIn,
    Item,
    ItemIn,
    Payment,
    PaymentIn,
    Posting,
    PostingIn,
    PriceForCustomer,
    PurchaseOrder,
    PurchaseOrderIn,
    SalesOrder,
    SalesOrderIn,
)


class ErpRefusal(Refusal):
    """A refusal of the ERP: ``slug`` names the problem, the message is safe to show;
    the kind states the status (``shared.refusals``)."""

    status = 422

    def __init__(self, slug: str, message: str, *, extra: dict[str, Any] | None = None) -> None:
        super().__init__(type(self).status, slug, message, extra=extra)


class NotFound(ErpRefusal):
    status = 404


class Conflict(ErpRefusal):
    status = 409


class Invalid(ErpRefusal):
    status = 422


class DuplicateRecord(Conflict):
    """The record (item, customer, invoice of a shipment, credit note of a cause)
    exists already."""


@runtime_checkable
class ErpPort(Protocol):
    async def create_item(self, tx: Tx, item: ItemIn) -> Item: ...
    async def get_item(self, sku: str) -> Item | None: ...
    async def list_items(
        self, skus: list[str] | None, after: str | None, limit: int, search: str | None = None
    ) -> list[Item]: ...
    async def create_customer(self, tx: Tx, customer: CustomerIn) -> Customer: ...
    async def get_customer(self, customer_id: str) -> Customer | None: ...
    async def update_customer(self, tx: Tx, customer_id: str, patch: CustomerPatch) -> Customer:
        """NotFound for an unknown customer; Invalid ``currency-change`` when the credit
        limit names another currency."""
        ...

    # -- customer prices over list prices --------------------------------------
    async def set_customer_price(
        self, tx: Tx, customer_id: str, sku: str, unit_price: Money
    ) -> CustomerPrice: ...
    async def delete_customer_price(self, tx: Tx, customer_id: str, sku: str) -> None: ...
    async def prices_for_customer(
        self, customer_id: str, skus: list[str]
    ) -> list[PriceForCustomer] | None: ...

    # -- sales orders and credit (the ERP is the book of record) ---------------
    async def put_sales_order(self, tx: Tx, order_id: str, order: SalesOrderIn) -> SalesOrder:
        """Stores ``order`` if its version is newer than the stored one; answers the
        stored order either way."""
        ...

    async def get_sales_order(self, order_id: str) -> SalesOrder | None: ...
    async def credit_exposure(self, customer_id: str) -> CreditExposure | None: ...

    # -- financial documents (decision 0031) -----------------------------------
    async def create_invoice(self, tx: Tx, invoice: InvoiceIn) -> Invoice:
        """Conflict ``shipment-not-posted`` / ``order-not-booked`` (a wait), Invalid
        ``customer-mismatch``, ``not-on-order``, ``price-mismatch``, ``over-billing``,
        ``currency-mismatch``, ``mixed-currencies``; DuplicateRecord
        ``duplicate-invoice`` for a shipment invoiced already."""
        ...

    async def get_invoice(self, invoice_id: str) -> Invoice | None: ...
    async def list_invoices(
        self,
        order_ids: Sequence[str],
        after: str | None,
        limit: int,
        *,
        customer_id: str | None = None,
        status: str | None = None,
        invoice_ids: Sequence[str] = (),
    ) -> list[Invoice]: ...
    async def create_credit_note(self, tx: Tx, note: CreditNoteIn) -> CreditNote:
        """Invalid ``unknown-invoice``, ``not-on-invoice``, ``currency-mismatch``,
        ``empty-credit``, ``over-credit``; DuplicateRecord ``duplicate-credit-note``
        (extra ``credit_note_id``) for a second note of one (invoice, reference)."""
        ...

    async def get_credit_note(self, credit_note_id: str) -> CreditNote | None: ...
    async def list_credit_notes(
        self,
        *,
        invoice_id: str | None,
        customer_id: str | None,
        reference: str | None,
        after: str | None,
        limit: int,
    ) -> list[CreditNote]: ...
    async def create_payment(self, tx: Tx, payment: PaymentIn) -> Payment:
        """Invalid ``invalid-amount``, ``duplicate-application``, ``unknown-customer``,
        ``currency-mismatch``, ``unknown-invoice``, ``over-application``."""
        ...

    async def get_payment(self, payment_id: str) -> Payment | None: ...
    async def list_payments(
        self, *, customer_id: str | None, after: str | None, limit: int
    ) -> list[Payment]: ...
    async def customer_balance(self, customer_id: str) -> CustomerBalance | None: ...

    # -- purchasing and financial inventory ---------------------------------
    async def create_purchase_order(self, tx: Tx, order: PurchaseOrderIn) -> PurchaseOrder: ...
    async def get_purchase_order(self, purchase_order_id: str) -> PurchaseOrder | None: ...
    async def list_purchase_orders(self, after: str | None, limit: int) -> list[PurchaseOrder]: ...
    async def cancel_purchase_order(self, tx: Tx, purchase_order_id: str) -> PurchaseOrder: ...
    async def create_asn(self, tx: Tx, asn: AsnIn) -> tuple[Asn, PurchaseOrder]: ...
    async def get_asn(self, asn_id: str) -> Asn | None: ...
    async def post_inventory(
        self, tx: Tx, posting: PostingIn
    ) -> tuple[Posting, Asn | None, PurchaseOrder | None]: ...
    async def list_financial_stock(
        self,
        skus: list[str] | None,
        warehouse_id: str | None,
        after: tuple[str, str] | None,
        limit: int,
    ) -> list[FinancialStock]: ...
