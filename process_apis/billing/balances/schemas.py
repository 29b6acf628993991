"""A customer's balance as the ERP (the books of record) has it now."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from shared.models import Currency, MoneyTotal


class SignedMoney(msgspec.Struct, frozen=True):
    """Money's shape for an amount that may be negative (the customer is owed money)."""

    amount_minor: Annotated[int, msgspec.Meta(ge=-(10**18), le=10**18)]
    currency: Currency


class Balance(msgspec.Struct):
    """``balance`` = ``invoiced`` - ``credited`` - ``paid`` (the invoices'
    outstanding); ``overdue`` the outstanding past its due dates; ``open_invoices`` how
    many have something outstanding; ``unapplied_credit`` payments not applied to any
    invoice; ``net`` = balance - unapplied_credit."""

    customer_id: str
    balance: MoneyTotal
    overdue: MoneyTotal
    open_invoices: int
    unapplied_credit: MoneyTotal
    as_of: datetime
    invoiced: MoneyTotal
    credited: MoneyTotal
    paid: MoneyTotal
    net: SignedMoney
