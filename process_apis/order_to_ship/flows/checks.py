"""Acceptance: the read-only checks before an order is written (decision 0026).

From the ERP, in one read (``order-terms``): the customer (known, ``active``, its group and ship-tos),
the customer's price per sku (customer-specific over the list price) and its credit
exposure (open orders not invoiced + unpaid invoices). Refusals are 422 and write
nothing; an ERP that cannot answer is the 503 of ``Downstream`` (nothing written,
retry with the same key). Over the credit limit is not a refusal: the order is placed
``on_hold`` for an operator."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from process_apis.order_to_ship.flows.partners import Partners, Refused
from process_apis.order_to_ship.orders import repository as repo
from process_apis.order_to_ship.orders.schemas import OrderIn, ShipToIn
from shared.refusals import Refusal


@dataclass
class Terms:
    currency: str
    prices: dict[str, int]
    ship_to: dict[str, Any] | None
    customer_group: str | None
    credit: dict[str, Any]
    over_limit: bool


def refuse_duplicate_skus(data: OrderIn) -> None:
    skus = [line.sku for line in data.lines]
    duplicated = sorted(sku for sku, n in Counter(skus).items() if n > 1)
    if duplicated:
        raise Refusal(
            422,
            "duplicate-sku",
            f"Each sku may appear on one line only: {', '.join(duplicated)}.",
        )


def resolve_ship_to(customer: dict[str, Any], wanted: ShipToIn | None) -> dict[str, Any] | None:
    """The order's destination: one of the customer's ship-tos (by id; the first one
    when the order names none), or an address with its region."""
    known = {str(s["ship_to_id"]): s for s in customer.get("ship_tos") or []}
    if wanted is not None and wanted.ship_to_id is None and wanted.address is None:
        if wanted.region is not None:
            return {"name": wanted.name, "region": wanted.region}
        wanted = None
    if wanted is None:
        first = next(iter(known.values()), None)
        return _from_master(first) if first else None
    if wanted.ship_to_id is not None:
        if wanted.ship_to_id not in known:
            raise Refusal(
                422,
                "unknown-ship-to",
                f"Customer {customer['customer_id']} has no ship-to {wanted.ship_to_id}.",
            )
        return _from_master(known[wanted.ship_to_id])
    if wanted.region is None or wanted.address is None:
        raise Refusal(422, "ship-to-region-required", "A ship-to address needs its region.")
    address = {k: v for k, v in _fields(wanted.address).items() if v is not None}
    return {"name": wanted.name, "address": address, "region": wanted.region}


def _fields(struct: Any) -> dict[str, Any]:
    return {name: getattr(struct, name) for name in struct.__struct_fields__}


def _from_master(ship_to: dict[str, Any]) -> dict[str, Any]:
    return {
        "ship_to_id": ship_to["ship_to_id"],
        "name": ship_to.get("name"),
        # The ERP answers an absent line2 as null; the order's address holds strings only.
        "address": {k: v for k, v in (ship_to.get("address") or {}).items() if v is not None},
        "region": ship_to.get("region"),
    }


def _priced(data: OrderIn, prices: dict[str, dict[str, Any]], currency: str) -> dict[str, int]:
    skus = [line.sku for line in data.lines]
    missing = [sku for sku in skus if sku not in prices]
    if missing:
        raise Refusal(
            422, "unknown-sku", f"Unknown sku: {', '.join(missing)}.", extra={"skus": missing}
        )
    foreign = [sku for sku in skus if prices[sku]["currency"] != currency]
    if foreign:
        raise Refusal(
            422,
            "currency-mismatch",
            f"Items priced in another currency than the customer's {currency}: "
            f"{', '.join(foreign)}.",
        )
    return {sku: int(prices[sku]["amount_minor"]) for sku in skus}


# The ERP's order-terms read takes up to 100 skus (an order has at most 100 lines; a
# batch's orders of one customer may name more).
SKUS_PER_READ = 100
READS_PER_CALL = 100  # the ERP's order-terms batch takes up to 100 reads


@dataclass
class CustomerTerms:
    """One read of a customer's terms for one or more of its orders: the ERP's
    customer, prices and credit exposure, and this service's open value the ERP has
    not heard of."""

    customer_id: str
    customer: dict[str, Any]
    prices: dict[str, dict[str, Any]]
    exposure: int
    unsynced: int


async def read_terms(
    partners: Partners, conn_reader: Any, customer_id: str, skus: list[str]
) -> CustomerTerms:
    """The terms of ``customer_id`` for ``skus``, or a 422 (unknown customer)."""
    # This service's orders the ERP has not heard of, read before the ERP's exposure:
    # an order synced between the two reads then counts twice (a hold an operator
    # releases), never in neither (an order over the limit accepted).
    async with conn_reader() as conn:
        unsynced = await _unsynced(conn, customer_id)
    read: CustomerTerms | None = None
    for start in range(0, len(skus), SKUS_PER_READ):
        terms = await partners.order_terms(customer_id, skus[start : start + SKUS_PER_READ])
        if terms is None:
            raise _unknown(customer_id)
        read = _with(read, customer_id, terms, unsynced)
    assert read is not None, "an order has a line"
    return read


async def read_terms_many(
    partners: Partners, conn_reader: Any, skus_of: dict[str, list[str]]
) -> dict[str, CustomerTerms | Refusal]:
    """``read_terms`` for several customers in as few ERP calls as it takes (100 reads
    of up to 100 skus each per call): per customer, its terms or its refusal (422
    unknown customer, 502 a read the ERP refused). The ERP away raises, as there."""
    async with conn_reader() as conn:  # before the ERP's exposure, as read_terms
        unsynced = {c: await _unsynced(conn, c) for c in skus_of}
    reads = [
        (customer_id, skus[start : start + SKUS_PER_READ])
        for customer_id, skus in skus_of.items()
        for start in range(0, len(skus), SKUS_PER_READ)
    ]
    out: dict[str, CustomerTerms | Refusal] = {}
    for first in range(0, len(reads), READS_PER_CALL):
        chunk = reads[first : first + READS_PER_CALL]
        for (customer_id, _), answer in zip(
            chunk, await partners.order_terms_many(chunk), strict=True
        ):
            read = out.get(customer_id)
            if isinstance(read, Refusal):
                continue
            if isinstance(answer, Refused):
                out[customer_id] = (
                    _unknown(customer_id)
                    if answer.status_code == 404
                    else Refusal(502, "erp-refused", f"The ERP refused a check: {answer.detail}")
                )
                continue
            out[customer_id] = _with(read, customer_id, answer, unsynced[customer_id])
    return out


def _unknown(customer_id: str) -> Refusal:
    return Refusal(422, "unknown-customer", f"No customer {customer_id}.")


def _with(
    read: CustomerTerms | None, customer_id: str, terms: dict[str, Any], unsynced: int
) -> CustomerTerms:
    """``read`` with one ERP answer's figures: the first answer makes it; later ones
    (a customer's skus beyond one read's) add their prices only."""
    prices = {item["sku"]: item["unit_price"] for item in terms["prices"]}
    if read is not None:
        read.prices.update(prices)
        return read
    return CustomerTerms(
        customer_id=customer_id,
        customer=terms["customer"],
        prices=prices,
        exposure=int(terms["credit"]["exposure"]["amount_minor"]),
        unsynced=unsynced,
    )


def terms_of(data: OrderIn, read: CustomerTerms, *, ahead: int = 0) -> Terms:
    """``data``'s terms under its customer's ``read``, or a 422 (nothing written).
    ``ahead``: the value of orders placed after the read and before this one (a
    batch's earlier orders of the customer), counted in its credit exposure."""
    customer = read.customer
    if customer.get("status", "active") != "active":
        raise Refusal(
            422,
            "customer-blocked",
            f"Customer {data.customer_id} is {customer['status']}; no orders are accepted.",
        )
    currency = str(customer["credit_limit"]["currency"])
    unit_prices = _priced(data, read.prices, currency)
    ship_to = resolve_ship_to(customer, data.ship_to)
    value = sum(line.quantity * unit_prices[line.sku] for line in data.lines)
    exposure = read.exposure + read.unsynced + ahead
    limit = int(customer["credit_limit"]["amount_minor"])
    figures = {
        "credit_limit": {"amount_minor": limit, "currency": currency},
        "exposure": {"amount_minor": exposure, "currency": currency},
        "order_value": {"amount_minor": value, "currency": currency},
    }
    return Terms(
        currency=currency,
        prices=unit_prices,
        ship_to=ship_to,
        customer_group=customer.get("customer_group"),
        credit=figures,
        over_limit=exposure + value > limit,
    )


async def accept(partners: Partners, conn_reader: Any, data: OrderIn) -> Terms:
    """The order's terms, or a 422 problem (nothing written)."""
    refuse_duplicate_skus(data)
    skus = [line.sku for line in data.lines]
    return terms_of(data, await read_terms(partners, conn_reader, data.customer_id, skus))


async def _unsynced(conn: AsyncConnection, customer_id: str) -> int:
    return await repo.unsynced_open_value(conn, customer_id)
