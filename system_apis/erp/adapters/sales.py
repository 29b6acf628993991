"""Sales orders as the reference ERP books them, and customers' credit exposure.

The order service sends each sales order whole, with a version: a newer version
replaces the stored one, an older or equal one changes nothing, so the ERP's copy does
not depend on the order in which updates arrive or on how often they are retried.

Exposure = open orders not yet invoiced (net, as the orders are valued) + unpaid
invoices (their outstanding less the customer's unapplied credit, at least 0), in one
query (the order service asks on every order)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ScalarSelect, bindparam, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.bulk import BulkInsert
from shared.db import Database, Tx, insert_if_new
from shared.models import Money, MoneyTotal
from system_apis.erp import db as tables
from system_apis.erp.adapters import open_value
from system_apis.erp.adapters.open_value import invoiced
from system_apis.erp.port import Invalid
from system_apis.erp.schemas import (
    CreditExposure,
    SalesOrder,
    SalesOrderIn,
    SalesOrderLine,
    SignedMoney,
)

CUST = tables.customers
SO = tables.sales_orders
SOL = tables.sales_order_lines
INV = tables.invoices
PAY = tables.payments

MAX_VALUE = 10**15  # Money's bound


def _outstanding() -> Any:
    """The enclosing query's customer's invoices, less what credit notes and payments
    took of them (its balance): kept on its row (``invoices.owe``) rather than summed
    over its open invoices on every order (a customer on net-60 terms has two months of
    them open)."""
    return CUST.c.outstanding_minor


def _unapplied_credit() -> ScalarSelect[Any]:
    """The enclosing query's customer's payments no invoice holds, in its currency."""
    return (
        select(func.coalesce(func.sum(PAY.c.unapplied_minor), 0))
        .where(
            PAY.c.customer_id == CUST.c.customer_id,
            PAY.c.unapplied_minor > 0,
            PAY.c.currency == CUST.c.currency,
        )
        .scalar_subquery()
    )


# Built once, with bind parameters: a statement built per call costs SQLAlchemy more
# than running it (its cache key is computed from the whole statement every time).
_EXPOSURE = select(
    CUST.c.credit_limit_minor,
    CUST.c.currency,
    # Kept on the customer's row, moved with each order's open value (decision 0054).
    CUST.c.open_orders_minor.label("open_orders"),
    _outstanding().label("outstanding"),
    _unapplied_credit().label("unapplied"),
).where(CUST.c.customer_id == bindparam("customer_id"))
_CUSTOMER_CURRENCY = select(CUST.c.currency).where(CUST.c.customer_id == bindparam("customer_id"))
_HEAD = select(SO, invoiced().label("invoiced")).where(SO.c.order_id == bindparam("order_id"))
_LINES = select(SOL).where(SOL.c.order_id == bindparam("order_id")).order_by(SOL.c.line_no)
_STORED = (
    select(SO.c.customer_id, SO.c.version, SO.c.currency, SO.c.open_value_minor)
    .where(SO.c.order_id == bindparam("order_id"))
    .with_for_update()
)
# A newer version replaces the head (bind names must differ from the columns').
_REPLACE_HEAD = (
    update(SO)
    .where(SO.c.order_id == bindparam("at_order"))
    .values(
        customer_id=bindparam("new_customer"),
        currency=bindparam("new_currency"),
        version=bindparam("new_version"),
        status=bindparam("new_status"),
        value_minor=bindparam("new_value"),
        updated_at=bindparam("now"),
    )
)
_DELETE_LINES = delete(SOL).where(SOL.c.order_id == bindparam("order_id"))
_INSERT_LINES = BulkInsert(
    SOL, ["order_id", "line_no", "sku", "quantity", "cancelled", "unit_price_minor"]
)


async def load_sales_order(conn: AsyncConnection, order_id: str) -> SalesOrder | None:
    params = {"order_id": order_id}
    head = (await conn.execute(_HEAD, params)).first()
    if head is None:
        return None
    rows = await conn.execute(_LINES, params)
    invoiced = int(head.invoiced)
    open_value = max(0, head.value_minor - invoiced) if head.status == "open" else 0
    return SalesOrder(
        order_id=head.order_id,
        customer_id=head.customer_id,
        currency=head.currency,
        version=head.version,
        status=head.status,
        lines=[SalesOrderLine(r.sku, r.quantity, r.cancelled, r.unit_price_minor) for r in rows],
        value=Money(head.value_minor, head.currency),
        invoiced=Money(invoiced, head.currency),
        open_value=Money(open_value, head.currency),
        updated_at=head.updated_at,
    )


async def _check_customer(conn: AsyncConnection, order: SalesOrderIn) -> None:
    currency = await conn.scalar(_CUSTOMER_CURRENCY, {"customer_id": order.customer_id})
    if currency is None:
        raise Invalid("unknown-customer", f"No customer {order.customer_id}.")
    if order.currency != currency:
        raise Invalid(
            "currency-mismatch",
            f"{order.customer_id}'s credit is kept in {currency}, not {order.currency}.",
        )


async def _stored(conn: AsyncConnection, order_id: str) -> Any:
    """The stored version's head, locked until the transaction ends (or None)."""
    return (await conn.execute(_STORED, {"order_id": order_id})).first()


async def _created(conn: AsyncConnection, order_id: str, head: dict[str, Any]) -> bool:
    """Whether the order was new and is now stored (False: a concurrent PUT stored it)."""
    inserted = await conn.execute(
        insert_if_new(SO, sqlite=conn.dialect.name == "sqlite"),
        {"order_id": order_id, "created_at": head["updated_at"], **head},
    )
    return bool(inserted.rowcount)


class ReferenceSales:
    db: Database

    async def put_sales_order(self, tx: Tx, order_id: str, order: SalesOrderIn) -> SalesOrder:
        conn = tx.conn
        if any(x.cancelled > x.quantity for x in order.lines):
            raise Invalid("invalid-line", "A line cannot cancel more than its quantity.")
        await _check_customer(conn, order)
        value = sum((x.quantity - x.cancelled) * x.unit_price_minor for x in order.lines)
        if value > MAX_VALUE:
            raise Invalid("value-too-large", f"Sales order {order_id} is worth more than 10^15.")
        now = datetime.now(UTC)
        head = {
            "customer_id": order.customer_id,
            "currency": order.currency,
            "version": order.version,
            "status": order.status,
            "value_minor": value,
            "updated_at": now,
        }
        stored = await _stored(conn, order_id)
        if stored is None and not await _created(conn, order_id, head):
            stored = await _stored(conn, order_id)
        # What the order counts for in its customer's open orders before this version
        # (None for a new order: read after its insert, nothing yet).
        before = None if stored is None else (str(stored.currency), int(stored.open_value_minor))
        if stored is not None:
            if stored.version >= order.version:
                found = await load_sales_order(conn, order_id)
                assert found is not None
                return found
            if stored.customer_id != order.customer_id:
                raise Invalid(
                    "sales-order-customer-changed",
                    f"Sales order {order_id} is {stored.customer_id}'s; a version cannot move it.",
                )
            replaced = {
                "at_order": order_id,
                "new_customer": head["customer_id"],
                "new_currency": head["currency"],
                "new_version": head["version"],
                "new_status": head["status"],
                "new_value": head["value_minor"],
                "now": head["updated_at"],
            }
            await conn.execute(_REPLACE_HEAD, replaced)
            await conn.execute(_DELETE_LINES, {"order_id": order_id})
        await _INSERT_LINES(
            conn,
            [
                {
                    "order_id": order_id,
                    "line_no": n,
                    "sku": x.sku,
                    "quantity": x.quantity,
                    "cancelled": x.cancelled,
                    "unit_price_minor": x.unit_price_minor,
                }
                for n, x in enumerate(order.lines, start=1)
            ],
        )
        await open_value.refresh(conn, order_id, before)
        found = await load_sales_order(conn, order_id)
        assert found is not None
        return found

    async def get_sales_order(self, order_id: str) -> SalesOrder | None:
        async with self.db.lookup() as conn:
            return await load_sales_order(conn, order_id)

    async def credit_exposure(self, customer_id: str) -> CreditExposure | None:
        # A lookup (on the loop's thread, decision 0051), not ``read()``: one row of the
        # customer and two index ranges of what it has open (orders with an open value,
        # payments not applied), a few hundred rows at most, not a scan; ``read()``'s
        # check-out and hand-offs to the driver's thread cost more than the figures.
        async with self.db.lookup() as conn:
            row = (await conn.execute(_EXPOSURE, {"customer_id": customer_id})).first()
        if row is None:
            return None
        currency = row.currency
        open_orders = int(row.open_orders)
        unpaid = max(0, int(row.outstanding) - int(row.unapplied))
        exposure = open_orders + unpaid
        return CreditExposure(
            customer_id=customer_id,
            credit_limit=Money(row.credit_limit_minor, currency),
            open_orders=MoneyTotal(open_orders, currency),
            unpaid_invoices=MoneyTotal(unpaid, currency),
            exposure=MoneyTotal(exposure, currency),
            available=SignedMoney(row.credit_limit_minor - exposure, currency),
        )
