"""A sales order's open value, kept on its row (``sales_orders.open_value_minor``):
its value less what is invoiced of it while it is ``open``, else 0. The credit
exposure sums it over a customer's orders with something open (an index), instead of
summing every open order's invoices on every order terms read (decision 0046).

Recomputed from the order's own rows wherever one of its inputs changes: a version of
the order stored (value, status) and an invoice issued for it."""

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


_REFRESH = (
    update(SO).where(SO.c.order_id == bindparam("at_order")).values(open_value_minor=open_value())
)
# Databases from before the column: every order's figure, once (upgrade_schema).
REFRESH_ALL = update(SO).values(open_value_minor=open_value())


async def refresh(conn: AsyncConnection, order_id: str) -> None:
    await conn.execute(_REFRESH, {"at_order": order_id})
