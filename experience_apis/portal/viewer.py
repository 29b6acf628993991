"""The customer account: ``viewer`` (the customer bound to the token) and, for staff,
``customer(id)`` (staff.py) answer this same type. Every read below names the
customer's own id and goes out with the caller's token, so the process APIs' binding
holds however the query is shaped."""

from __future__ import annotations

import strawberry

from experience_apis.portal.connections import Connection, Start, window
from experience_apis.portal.context import PortalContext
from experience_apis.portal.finance import CreditNote, Invoice, Statement
from experience_apis.portal.money import Money
from experience_apis.portal.objects import Order, Return
from experience_apis.portal.upstream import OrderFilter, PortalError
from experience_apis.portal.wire import (
    AccountDoc,
    AccountShipToDoc,
    BalanceDoc,
    CreditNoteDoc,
    InvoiceDoc,
    OrderDoc,
    RmaDoc,
)

Info = strawberry.Info[PortalContext, None]


@strawberry.input(description="Every given condition must hold.")
class OrderFilterInput:
    status: list[str] | None = None
    placed_from: str | None = strawberry.field(
        default=None, description="ISO 8601 date-time: placed at or after it."
    )
    placed_to: str | None = strawberry.field(
        default=None, description="ISO 8601 date-time: placed before it."
    )
    sku: str | None = strawberry.field(default=None, description="Orders with a line of it.")
    channel: str | None = None

    def upstream(self) -> OrderFilter:
        return OrderFilter(
            status=list(self.status or []),
            placed_from=self.placed_from,
            placed_to=self.placed_to,
            sku=self.sku,
            channel=self.channel,
        )


@strawberry.type
class Address:
    line1: str | None
    line2: str | None
    city: str | None
    postal_code: str | None
    country: str | None


@strawberry.type
class ShipTo:
    id: strawberry.ID
    name: str | None
    address: Address | None

    @classmethod
    def of(cls, doc: AccountShipToDoc) -> ShipTo:
        a = doc.address
        return cls(
            id=strawberry.ID(doc.ship_to_id),
            name=doc.name,
            address=Address(
                line1=a.get("line1"),
                line2=a.get("line2"),
                city=a.get("city"),
                postal_code=a.get("postal_code"),
                country=a.get("country"),
            )
            if a
            else None,
        )


async def _balance(root: Customer, info: Info) -> BalanceDoc | None:
    return await info.context.caller.loaders.balances.load(str(root.id))


async def open_balance(root: Customer, info: Info) -> Money | None:
    doc = await _balance(root, info)
    return Money.exactly(doc.balance) if doc else None


async def overdue_amount(root: Customer, info: Info) -> Money | None:
    doc = await _balance(root, info)
    return Money.exactly(doc.overdue) if doc else None


async def unapplied_credit(root: Customer, info: Info) -> Money | None:
    doc = await _balance(root, info)
    return Money.of(doc.unapplied_credit) if doc else None


async def customer_orders(
    root: Customer,
    info: Info,
    first: int = 20,
    after: str | None = None,
    filter: OrderFilterInput | None = None,
) -> Connection[Order]:
    caller = info.context.caller
    start = Start.after(after)
    page = await caller.apis.order_page(
        str(root.id),
        start.limit(first),
        start.cursor,
        filter.upstream() if filter else None,
        count=True,
    )
    found = window(page, start, first, OrderDoc, "order_to_ship")
    caller.loaders.prime_orders(found.docs)
    return Connection.of(found, Order.of)


async def customer_invoices(
    root: Customer, info: Info, first: int = 20, after: str | None = None
) -> Connection[Invoice]:
    start = Start.after(after)
    page = await info.context.caller.apis.billing_page(
        "invoices", str(root.id), start.limit(first), start.cursor
    )
    return Connection.of(window(page, start, first, InvoiceDoc, "billing"), Invoice.of)


async def customer_credit_notes(
    root: Customer, info: Info, first: int = 20, after: str | None = None
) -> Connection[CreditNote]:
    start = Start.after(after)
    page = await info.context.caller.apis.billing_page(
        "credit-notes", str(root.id), start.limit(first), start.cursor
    )
    return Connection.of(window(page, start, first, CreditNoteDoc, "billing"), CreditNote.of)


async def customer_returns(
    root: Customer,
    info: Info,
    first: int = 20,
    after: str | None = None,
    status: list[str] | None = None,
) -> Connection[Return]:
    start = Start.after(after)
    page = await info.context.caller.apis.return_page(
        str(root.id), start.limit(first), start.cursor, list(status or [])
    )
    return Connection.of(window(page, start, first, RmaDoc, "order_to_ship"), Return.of)


async def customer_statement(root: Customer, info: Info) -> Statement | None:
    doc = await info.context.caller.apis.statement(str(root.id))
    return Statement.of(doc) if doc else None


async def _account(root: Customer, info: Info) -> AccountDoc:
    """The account document, read once per request (the loader caches it). It is read
    alongside the customer's other documents, not before them: ``viewer`` knows its id
    from the token, so ``viewer { name orders }`` costs one round of calls, not two."""
    doc = await info.context.caller.loaders.accounts.load(str(root.id))
    if doc is None:
        raise PortalError("The customer account is not known to the ERP.", "NOT_FOUND")
    return doc


async def customer_name(root: Customer, info: Info) -> str:
    return (await _account(root, info)).name


async def customer_status(root: Customer, info: Info) -> str:
    return (await _account(root, info)).status


async def customer_group(root: Customer, info: Info) -> str | None:
    return (await _account(root, info)).customer_group


async def payment_terms(root: Customer, info: Info) -> str | None:
    return (await _account(root, info)).payment_terms


async def currency(root: Customer, info: Info) -> str | None:
    return (await _account(root, info)).currency


async def credit_limit(root: Customer, info: Info) -> Money:
    return Money.exactly((await _account(root, info)).credit_limit)


async def exposure(root: Customer, info: Info) -> Money:
    return Money.exactly((await _account(root, info)).exposure)


async def available_credit(root: Customer, info: Info) -> Money | None:
    return Money.of((await _account(root, info)).available)


async def ship_tos(root: Customer, info: Info) -> list[ShipTo]:
    return [ShipTo.of(s) for s in (await _account(root, info)).ship_tos]


@strawberry.type(description="A customer account as the ERP keeps it, with its documents.")
class Customer:
    id: strawberry.ID
    name: str = strawberry.field(resolver=customer_name)
    status: str = strawberry.field(resolver=customer_status, description="active, blocked, ...")
    customer_group: str | None = strawberry.field(resolver=customer_group)
    payment_terms: str | None = strawberry.field(resolver=payment_terms)
    currency: str | None = strawberry.field(resolver=currency)
    credit_limit: Money = strawberry.field(resolver=credit_limit)
    exposure: Money = strawberry.field(
        resolver=exposure, description="What the ERP counts against the limit."
    )
    available_credit: Money | None = strawberry.field(
        resolver=available_credit,
        description="Credit limit less exposure (negative when over the limit).",
    )
    ship_tos: list[ShipTo] = strawberry.field(resolver=ship_tos)

    open_balance: Money | None = strawberry.field(
        resolver=open_balance, description="Invoices less credit notes less payments applied."
    )
    overdue_amount: Money | None = strawberry.field(
        resolver=overdue_amount, description="Outstanding on invoices past their due date."
    )
    unapplied_credit: Money | None = strawberry.field(resolver=unapplied_credit)
    orders: Connection[Order] = strawberry.field(
        resolver=customer_orders,
        description="Oldest first; `first` is clamped to 1..100; pass pageInfo.endCursor "
        "as `after`.",
    )
    invoices: Connection[Invoice] = strawberry.field(resolver=customer_invoices)
    credit_notes: Connection[CreditNote] = strawberry.field(resolver=customer_credit_notes)
    returns: Connection[Return] = strawberry.field(resolver=customer_returns)
    statement: Statement | None = strawberry.field(resolver=customer_statement)


async def load_customer(info: Info, customer_id: str) -> Customer | None:
    """The account, if this caller may read this customer and the ERP knows it (else
    null; no call made when it may not)."""
    caller = info.context.caller
    if not caller.may_read_customer(customer_id):
        return None
    doc = await caller.loaders.accounts.load(customer_id)
    return Customer(id=strawberry.ID(customer_id)) if doc else None


async def resolve_viewer(info: Info) -> Customer | None:
    """The token's own customer, answered at once: its account is read with the
    customer's other documents (see ``_account``)."""
    bound = info.context.caller.principal.customer_id
    return Customer(id=strawberry.ID(bound)) if bound is not None else None
