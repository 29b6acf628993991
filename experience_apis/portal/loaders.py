"""The request's DataLoaders: every downstream read a field makes goes through one, so
the fields of all the objects of a query that need the same kind of document are
answered by one batched request (per 100 keys). Created per request (context.py):
nothing is cached across callers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from strawberry.dataloader import DataLoader

from experience_apis.portal.upstream import BATCH, ProcessApis
from experience_apis.portal.wire import (
    AccountDoc,
    BalanceDoc,
    CreditNoteDoc,
    InvoiceDoc,
    OrderDoc,
    PaymentDoc,
    RmaDoc,
    StatusChangeDoc,
)

V = TypeVar("V")


def _each(
    fetch: Callable[[str], Awaitable[V]],
) -> Callable[[Sequence[str]], Awaitable[list[V | BaseException]]]:
    """For documents read one at a time (a customer's account): all together."""

    async def load(keys: Sequence[str]) -> list[V | BaseException]:
        return await asyncio.gather(*map(fetch, keys), return_exceptions=True)

    return load


def _loader(load: Callable[[list[str]], Awaitable[list[Any]]]) -> DataLoader[str, Any]:
    return DataLoader(load_fn=load, max_batch_size=BATCH)


class Loaders:
    def __init__(self, apis: ProcessApis) -> None:
        self.orders: DataLoader[str, OrderDoc | None] = _loader(apis.orders_by_id)
        self.invoices: DataLoader[str, list[InvoiceDoc]] = _loader(apis.invoices_by_order)
        self.history: DataLoader[str, list[StatusChangeDoc]] = _loader(apis.history_by_order)
        self.returns: DataLoader[str, list[RmaDoc]] = _loader(apis.returns_by_order)
        self.payments: DataLoader[str, list[PaymentDoc]] = _loader(apis.payments_by_invoice)
        self.credit_notes: DataLoader[str, list[CreditNoteDoc]] = _loader(
            apis.credit_notes_by_invoice
        )
        self.accounts: DataLoader[str, AccountDoc | None] = _loader(_each(apis.account))
        self.balances: DataLoader[str, BalanceDoc | None] = _loader(_each(apis.balance))

    def prime_orders(self, orders: Sequence[OrderDoc]) -> None:
        """Orders read by a list are known: order(id) on them costs nothing more."""
        self.orders.prime_many({order.order_id: order for order in orders})
