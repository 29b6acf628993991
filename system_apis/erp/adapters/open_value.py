"""A sales order's open value, kept on its row (``sales_orders.open_value_minor``):
its value less what is invoiced of it while it is ``open``, else 0, instead of summing
every open order's invoices on every order terms read (decision 0046); the credit
exposure reads its customer's sum of them, kept on the customer's row (decision 0054).

Recomputed from the order's own rows wherever one of its inputs changes: a version of
the order stored (value, status, currency) and an invoice issued for it. Its customer's
``open_orders_minor`` moves by the same difference in the same transaction, when the
order is in the customer's currency (an order never changes customer, a customer
never changes currency): the exposure reads one row (decision 0054)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ScalarSelect, bindparam, case, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from system_apis.erp import db as tables

SO = tables.sales_orders
INV = tables.invoices


def invoiced() -> ScalarSelect[Any]:
    """What the ERP has invoiced of the enclosing query's sales order, net of tax (the
    order's value is net)."""
    return (
        select(func.coalesce(func.sum(INV.c.subtotal_minor), 0))
        .where(INV.c.order_id == SO.c.order_id, INV.c.currency == SO.c.currency)
        .scalar_subquery()
    )


def open_value() -> Any:
    """The open value of the enclosing query's sales order (what ``open_value`` of
    ``GET /erp/v1/sales-orders/{id}`` says)."""
    return case(
        (SO.c.status != "open", 0),
        (SO.c.value_minor > invoiced(), SO.c.value_minor - invoiced()),
        else_=0,
    )


CUST = tables.customers

_BEFORE = select(SO.c.currency, SO.c.open_value_minor).where(SO.c.order_id == bindparam("at_order"))
_REFRESH = (
    update(SO)
    .where(SO.c.order_id == bindparam("at_order"))
    .values(open_value_minor=open_value())
    .returning(SO.c.customer_id, SO.c.currency, SO.c.open_value_minor)
)
# Only an order in the customer's currency counts: another currency matches no row.
_MOVE_CUSTOMER = (
    update(CUST)
    .where(
        CUST.c.customer_id == bindparam("at_customer"),
        CUST.c.currency == bindparam("in_currency"),
    )
    .values(open_orders_minor=CUST.c.open_orders_minor + bindparam("by"))
)
# Databases from before the column: every order's figure, once (upgrade_schema).
REFRESH_ALL = update(SO).values(open_value_minor=open_value())
# And every customer's from its orders' (upgrade_schema, after REFRESH_ALL).
FILL_CUSTOMERS = update(CUST).values(
    open_orders_minor=select(func.coalesce(func.sum(SO.c.open_value_minor), 0))
    .where(
        SO.c.customer_id == CUST.c.customer_id,
        SO.c.currency == CUST.c.currency,
        SO.c.open_value_minor > 0,
    )
    .scalar_subquery()
)

# (currency, open value) of an order as its customer's figure counts it now.
Counted = tuple[str, int]


async def counted(conn: AsyncConnection, order_id: str) -> Counted | None:
    """What the order counts for now (None: no such order yet)."""
    row = (await conn.execute(_BEFORE, {"at_order": order_id})).first()
    return None if row is None else (str(row.currency), int(row.open_value_minor))


async def refresh(conn: AsyncConnection, order_id: str, before: Counted | None = None) -> None:
    """Recomputes the order's open value and moves its customer's figure by the
    difference. ``before``: what the order counted for before this transaction changed
    its currency (read here when not given)."""
    if before is None:
        before = await counted(conn, order_id)
    after = (await conn.execute(_REFRESH, {"at_order": order_id})).first()
    if after is None:
        return
    currency, value = str(after.currency), int(after.open_value_minor)
    was_currency, was = before if before is not None else (currency, 0)
    if was_currency == currency:
        moves = [(currency, value - was)]
    else:
        moves = [(was_currency, -was), (currency, value)]
    for in_currency, by in moves:
        if by:
            await conn.execute(
                _MOVE_CUSTOMER,
                {"at_customer": after.customer_id, "in_currency": in_currency, "by": by},
            )
