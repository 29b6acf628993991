"""The customer master of the reference ERP: customers with status, group, payment
terms and ship-to addresses, and their prices over the items' list prices."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from msgspec import UNSET, UnsetType
from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db import Database, Tx, savepoint
from shared.models import Money
from system_apis.erp import db as tables
from system_apis.erp.countries import COUNTRIES
from system_apis.erp.port import DuplicateRecord, Invalid, NotFound
from system_apis.erp.schemas import (
    Address,
    Customer,
    CustomerIn,
    CustomerPatch,
    CustomerPrice,
    PriceForCustomer,
    ShipTo,
)

CUST = tables.customers
SHIP = tables.customer_ship_tos
PRICE = tables.customer_prices
ITEM = tables.items


def _ship_to(row: Any) -> ShipTo:
    address = Address(row.line1, row.city, row.postal_code, row.country, row.line2)
    return ShipTo(row.ship_to_id, row.name, address, row.region)


# The order terms' reads (one per order), built once with bind parameters: a statement
# built per call costs SQLAlchemy more than running it (its cache key is computed from
# the whole statement every time).
_CUSTOMER = select(CUST).where(CUST.c.customer_id == bindparam("customer_id"))
_SHIP_TOS = (
    select(SHIP).where(SHIP.c.customer_id == bindparam("customer_id")).order_by(SHIP.c.position)
)
_KNOWN = select(CUST.c.customer_id).where(CUST.c.customer_id == bindparam("customer_id"))
# Each sku's list price and the customer's own price, if it has one.
_PRICES = (
    select(
        ITEM.c.sku,
        ITEM.c.price_minor,
        ITEM.c.currency,
        PRICE.c.price_minor.label("own"),
        PRICE.c.currency.label("own_currency"),
    )
    .select_from(
        ITEM.outerjoin(
            PRICE,
            (PRICE.c.sku == ITEM.c.sku) & (PRICE.c.customer_id == bindparam("customer_id")),
        )
    )
    .where(ITEM.c.sku.in_(bindparam("skus", expanding=True)))
    .order_by(ITEM.c.sku)
)


async def load_customer(conn: AsyncConnection, customer_id: str) -> Customer | None:
    params = {"customer_id": customer_id}
    row = (await conn.execute(_CUSTOMER, params)).first()
    if row is None:
        return None
    ship_tos = await conn.execute(_SHIP_TOS, params)
    return Customer(
        customer_id=row.customer_id,
        name=row.name,
        credit_limit=Money(row.credit_limit_minor, row.currency),
        created_at=row.created_at,
        status=row.status,
        customer_group=row.customer_group,
        payment_terms=row.payment_terms,
        ship_tos=[_ship_to(r) for r in ship_tos],
        updated_at=row.updated_at or row.created_at,
    )


async def _replace_ship_tos(
    conn: AsyncConnection, customer_id: str, ship_tos: list[ShipTo]
) -> None:
    await conn.execute(delete(SHIP).where(SHIP.c.customer_id == customer_id))
    if ship_tos:
        await conn.execute(
            insert(SHIP),
            [
                {
                    "customer_id": customer_id,
                    "ship_to_id": s.ship_to_id,
                    "position": n,
                    "name": s.name,
                    "line1": s.address.line1,
                    "line2": s.address.line2,
                    "city": s.address.city,
                    "postal_code": s.address.postal_code,
                    "country": s.address.country,
                    "region": s.region,
                }
                for n, s in enumerate(ship_tos)
            ],
        )


def check_ship_tos(ship_tos: list[ShipTo]) -> None:
    """What the schema cannot say: assigned country codes, distinct ids."""
    ids = [s.ship_to_id for s in ship_tos]
    if len(set(ids)) != len(ids):
        raise Invalid("duplicate-ship-to", "Each ship_to_id may appear once.")
    unknown = sorted({s.address.country for s in ship_tos} - COUNTRIES)
    if unknown:
        raise Invalid("unknown-country", f"Not ISO 3166-1 alpha-2 country codes: {unknown}.")


def _changes(patch: CustomerPatch) -> dict[str, Any]:
    """The customer columns ``patch`` sets (ship-tos are rows of their own)."""
    values: dict[str, Any] = {
        name: getattr(patch, name)
        for name in ("name", "status", "customer_group", "payment_terms")
        if getattr(patch, name) is not UNSET
    }
    if not isinstance(patch.credit_limit, UnsetType):
        values["credit_limit_minor"] = patch.credit_limit.amount_minor
    return values


class ReferenceCustomers:
    db: Database

    async def create_customer(self, tx: Tx, customer: CustomerIn) -> Customer:
        check_ship_tos(customer.ship_tos)
        now = datetime.now(UTC)
        try:
            async with savepoint(tx.conn):
                await tx.conn.execute(
                    insert(CUST).values(
                        customer_id=customer.customer_id,
                        name=customer.name,
                        credit_limit_minor=customer.credit_limit.amount_minor,
                        currency=customer.credit_limit.currency,
                        status=customer.status,
                        customer_group=customer.customer_group,
                        payment_terms=customer.payment_terms,
                        created_at=now,
                        updated_at=now,
                    )
                )
        except IntegrityError as exc:
            raise DuplicateRecord(
                "duplicate-customer", f"Customer {customer.customer_id} already exists."
            ) from exc
        await _replace_ship_tos(tx.conn, customer.customer_id, customer.ship_tos)
        return Customer(
            customer_id=customer.customer_id,
            name=customer.name,
            credit_limit=customer.credit_limit,
            created_at=now,
            status=customer.status,
            customer_group=customer.customer_group,
            payment_terms=customer.payment_terms,
            ship_tos=list(customer.ship_tos),
            updated_at=now,
        )

    async def get_customer(self, customer_id: str) -> Customer | None:
        async with self.db.lookup() as conn:
            return await load_customer(conn, customer_id)

    async def update_customer(self, tx: Tx, customer_id: str, patch: CustomerPatch) -> Customer:
        if not isinstance(patch.ship_tos, UnsetType):
            check_ship_tos(patch.ship_tos)
        conn = tx.conn
        where = [CUST.c.customer_id == customer_id]
        if not isinstance(patch.credit_limit, UnsetType):
            where.append(CUST.c.currency == patch.credit_limit.currency)
        # Every patch updates the row (updated_at at least): concurrent patches of one
        # customer take turns on its lock, ship-to lists included.
        values = _changes(patch) | {"updated_at": datetime.now(UTC)}
        result = await conn.execute(update(CUST).where(*where).values(**values))
        if result.rowcount != 1:
            await self._refuse_update(conn, customer_id)
        if not isinstance(patch.ship_tos, UnsetType):
            await _replace_ship_tos(conn, customer_id, patch.ship_tos)
        found = await load_customer(conn, customer_id)
        assert found is not None
        return found

    async def _refuse_update(self, conn: AsyncConnection, customer_id: str) -> None:
        currency = await conn.scalar(
            select(CUST.c.currency).where(CUST.c.customer_id == customer_id)
        )
        if currency is None:
            raise NotFound("customer-not-found", f"No customer {customer_id}.")
        raise Invalid(
            "currency-change",
            f"The credit limit of {customer_id} is in {currency}; its currency cannot change.",
        )

    # -- prices --------------------------------------------------------------
    async def set_customer_price(
        self, tx: Tx, customer_id: str, sku: str, unit_price: Money
    ) -> CustomerPrice:
        conn = tx.conn
        currency = await conn.scalar(
            select(CUST.c.currency).where(CUST.c.customer_id == customer_id)
        )
        if currency is None:
            raise NotFound("customer-not-found", f"No customer {customer_id}.")
        if await conn.scalar(select(ITEM.c.sku).where(ITEM.c.sku == sku)) is None:
            raise NotFound("item-not-found", f"No item {sku}.")
        if unit_price.currency != currency:
            raise Invalid(
                "currency-mismatch",
                f"{customer_id} is invoiced in {currency}, not {unit_price.currency}.",
            )
        now = datetime.now(UTC)
        dialect_insert: Any = sqlite_insert if conn.dialect.name == "sqlite" else pg_insert
        stmt = dialect_insert(PRICE).values(
            customer_id=customer_id,
            sku=sku,
            price_minor=unit_price.amount_minor,
            currency=unit_price.currency,
            updated_at=now,
        )
        await conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["customer_id", "sku"],
                set_={"price_minor": stmt.excluded.price_minor, "updated_at": now},
            )
        )
        return CustomerPrice(customer_id, sku, unit_price)

    async def delete_customer_price(self, tx: Tx, customer_id: str, sku: str) -> None:
        """Idempotent: a customer without a price of its own for ``sku`` keeps none."""
        conn = tx.conn
        if (
            await conn.scalar(select(CUST.c.customer_id).where(CUST.c.customer_id == customer_id))
            is None
        ):
            raise NotFound("customer-not-found", f"No customer {customer_id}.")
        if await conn.scalar(select(ITEM.c.sku).where(ITEM.c.sku == sku)) is None:
            raise NotFound("item-not-found", f"No item {sku}.")
        await conn.execute(
            delete(PRICE).where(PRICE.c.customer_id == customer_id, PRICE.c.sku == sku)
        )

    async def prices_for_customer(
        self, customer_id: str, skus: list[str]
    ) -> list[PriceForCustomer] | None:
        """The customer's price of each known sku in ``skus`` (its own over the list
        price), ordered by sku; None for an unknown customer."""
        async with self.db.lookup() as conn:
            known = await conn.scalar(_KNOWN, {"customer_id": customer_id})
            if known is None:
                return None
            rows = (await conn.execute(_PRICES, {"customer_id": customer_id, "skus": skus})).all()
        return [
            PriceForCustomer(r.sku, Money(r.own, r.own_currency), "customer")
            if r.own is not None
            else PriceForCustomer(r.sku, Money(r.price_minor, r.currency), "list")
            for r in rows
        ]
