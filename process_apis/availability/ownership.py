"""Whose allocations and holds a caller may touch (decisions 0014 and 0021).

An allocation or hold carries the customer it was made for. A client bound to a
customer makes them for that customer only, and reads, releases and converts only
those: another customer's (or one staff made for nobody) answers exactly what an
unknown id answers. Unbound clients (the platform's services, operators) are staff:
they may name the customer and see everything."""

from __future__ import annotations

import msgspec

from process_apis.availability.schemas import AllocationIn
from shared.auth.principal import Principal
from shared.refusals import Refusal


def customer_for(principal: Principal, named: str | None) -> str | None:
    """The customer a new allocation or hold is made for: the bound caller's own (403
    ``customer-not-permitted`` when the body names another, decided from the token
    alone so that it says nothing about the other customer), else what staff named."""
    bound = principal.customer_id
    if bound is None:
        return named
    if named is not None and named != bound:
        raise Refusal(
            403,
            "customer-not-permitted",
            f"This client may allocate and hold stock for customer {bound} only.",
        )
    return bound


def for_customer(principal: Principal, data: AllocationIn) -> AllocationIn:
    """``data`` as allocated for the caller's customer (``customer_for``): the route
    and the fast path both pass every request through here."""
    customer = customer_for(principal, data.customer_id)
    if customer == data.customer_id:
        return data
    return msgspec.structs.replace(data, customer_id=customer)


def visible_to(bound: str | None, owner: str | None) -> bool:
    """Whether a caller bound to ``bound`` (None: staff) may see an object of ``owner``."""
    return bound is None or bound == owner
