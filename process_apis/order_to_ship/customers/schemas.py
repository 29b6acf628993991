"""A customer's account as the portal shows it: the ERP's customer master and its
credit, in the order process's contract."""

from __future__ import annotations

from typing import Annotated

import msgspec

from shared.models import Currency, Money, MoneyTotal


class SignedMoney(msgspec.Struct, frozen=True):
    """Money's shape for an amount that may be negative (credit available)."""

    amount_minor: Annotated[int, msgspec.Meta(ge=-(10**18), le=10**18)]
    currency: Currency


class Address(msgspec.Struct):
    line1: str
    city: str
    postal_code: str
    country: str
    line2: str | None = None


class AccountShipTo(msgspec.Struct):
    ship_to_id: str
    name: str
    region: str
    address: Address


class Account(msgspec.Struct):
    """``exposure`` = the ERP's open orders + unpaid invoices; ``available`` =
    ``credit_limit`` - ``exposure`` (negative: over the limit). ``currency`` is the
    credit limit's."""

    customer_id: str
    name: str
    status: str
    customer_group: str | None
    payment_terms: str
    currency: str
    credit_limit: Money
    exposure: MoneyTotal
    available: SignedMoney
    ship_tos: list[AccountShipTo]
