"""The ERP port: what the system API needs from an ERP, in canonical terms. The
reference adapter keeps it on SQL; a vendor adapter maps its own dialect onto it."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from shared.db import Tx
from system_apis.erp.schemas import Customer, CustomerIn, Invoice, InvoiceIn, Item, ItemIn


class DuplicateRecord(Exception):
    pass


@runtime_checkable
class ErpPort(Protocol):
    async def create_item(self, tx: Tx, item: ItemIn) -> Item: ...
    async def get_item(self, sku: str) -> Item | None: ...
    async def list_items(
        self, skus: list[str] | None, after: str | None, limit: int
    ) -> list[Item]: ...
    async def create_customer(self, tx: Tx, customer: CustomerIn) -> Customer: ...
    async def get_customer(self, customer_id: str) -> Customer | None: ...
    async def create_invoice(self, tx: Tx, invoice: InvoiceIn) -> Invoice: ...
    async def list_invoices(
        self, order_ids: list[str], after: str | None, limit: int
    ) -> list[Invoice]: ...
