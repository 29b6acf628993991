"""Money on the wire: minor units in a Long (beyond GraphQL's 32-bit Int)."""

from __future__ import annotations

from typing import NewType

import strawberry

from experience_apis.portal.wire import MoneyDoc

# Money in minor units can pass GraphQL's 32-bit Int (USD 21,474,836.47); see schema.py.
Long = NewType("Long", int)


@strawberry.type(description="An amount in the currency's minor unit (cents for USD).")
class Money:
    amount_minor: Long
    currency: str = strawberry.field(description="ISO 4217 code, e.g. USD.")

    @classmethod
    def of(cls, doc: MoneyDoc | None) -> Money | None:
        return cls.exactly(doc) if doc else None

    @classmethod
    def exactly(cls, doc: MoneyDoc) -> Money:
        return cls(amount_minor=Long(doc.amount_minor), currency=doc.currency)
