"""What a mutation answers: its payload or one of these typed errors, in a union a UI
switches on (``__typename``). Every error carries a stable ``code``, a ``message`` and
the input ``fields`` it concerns; the process API's problem decides which one."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry

from experience_apis.portal.money import Money
from experience_apis.portal.objects import ItemQuantity, Order, Return
from experience_apis.portal.upstream import Answer
from experience_apis.portal.wire import HoldDoc, MoneyDoc


@strawberry.interface(description="A refused mutation: nothing was changed.")
class UserError:
    code: str
    message: str
    fields: list[str] = strawberry.field(description="The input fields it concerns, if any.")


@strawberry.type
class ValidationError(UserError):
    problem_type: str | None


@strawberry.type
class NotFound(UserError):
    pass


@strawberry.type(description="The token lacks the grant for this mutation.")
class Forbidden(UserError):
    pass


@strawberry.type(description="The process API could not be reached; retry with the same key.")
class Unavailable(UserError):
    pass


@strawberry.type(description="The order or hold is in a state that refuses this change.")
class Conflict(UserError):
    problem_type: str | None


@strawberry.type
class StockShortage:
    sku: str
    requested: int
    available: int


@strawberry.type(description="Not enough stock for every line; nothing was placed or held.")
class InsufficientStock(UserError):
    sku: str = strawberry.field(description="The first short sku (all of them: shortages).")
    requested: int
    available: int
    shortages: list[StockShortage]


@strawberry.type(
    description="The order was placed but is held for credit (over the limit): a credit "
    "controller releases or rejects it."
)
class CreditHold(UserError):
    order: Order
    credit_limit: Money | None
    exposure: Money | None
    order_value: Money | None


@strawberry.type(description="A return line above what shipped less what is already returned.")
class ReturnExceedsShipped(UserError):
    sku: str
    shipped: int
    returned: int
    requested: int


@strawberry.type
class OrderPlaced:
    order: Order


@strawberry.type
class OrderCancelled:
    order: Order


@strawberry.type
class ReturnRequested:
    rma: Return = strawberry.field(name="return")


@strawberry.type(description="Stock held for a cart until it expires.")
class CartHold:
    id: strawberry.ID
    channel: str
    status: str = strawberry.field(description="active, released, expired or converted.")
    expires_at: datetime = strawberry.field(description="When the units stop counting.")
    order_id: strawberry.ID | None
    lines: list[ItemQuantity]

    @classmethod
    def of(cls, doc: HoldDoc) -> CartHold:
        quantities: dict[str, int] = {}
        for line in doc.lines:
            quantities[line.sku] = quantities.get(line.sku, 0) + line.quantity
        return cls(
            id=strawberry.ID(doc.hold_id),
            channel=doc.channel,
            status=doc.status,
            expires_at=doc.expires_at,
            order_id=strawberry.ID(doc.order_id) if doc.order_id else None,
            lines=[ItemQuantity(sku=s, quantity=q) for s, q in quantities.items()],
        )


@strawberry.type
class CartHoldCreated:
    cart_hold: CartHold


@strawberry.type
class CartHoldReleased:
    cart_hold: CartHold


def _fields(body: dict[str, Any]) -> list[str]:
    errors = body.get("errors")
    found: list[str] = []
    if isinstance(errors, list):
        for error in errors:
            if isinstance(error, dict):
                name = error.get("key") or error.get("field") or error.get("sku")
                if isinstance(name, str):
                    found.append(name)
    return found


def _money(value: Any) -> Money | None:
    if isinstance(value, dict) and isinstance(value.get("amount_minor"), int):
        return Money.exactly(MoneyDoc(value["amount_minor"], str(value.get("currency", ""))))
    return None


def insufficient_stock(answer: Answer) -> InsufficientStock:
    shortages = [
        StockShortage(
            sku=str(e.get("sku", "")),
            requested=int(e.get("requested", 0)),
            available=int(e.get("available", 0)),
        )
        for e in answer.body.get("errors") or []
        if isinstance(e, dict)
    ]
    first = shortages[0] if shortages else StockShortage(sku="", requested=0, available=0)
    return InsufficientStock(
        code="INSUFFICIENT_STOCK",
        message=answer.detail or "Not enough stock.",
        fields=["lines"],
        sku=first.sku,
        requested=first.requested,
        available=first.available,
        shortages=shortages,
    )


def return_exceeds(answer: Answer) -> ReturnExceedsShipped:
    b = answer.body
    return ReturnExceedsShipped(
        code="RETURN_EXCEEDS_SHIPPED",
        message=answer.detail,
        fields=["lines"],
        sku=str(b.get("sku", "")),
        shipped=int(b.get("shipped", 0)),
        returned=int(b.get("returned", 0)),
        requested=int(b.get("requested", 0)),
    )


def credit_hold(order: Order, credit: Any) -> CreditHold:
    credit = credit if isinstance(credit, dict) else {}
    return CreditHold(
        code="CREDIT_HOLD",
        message="The order is over the customer's credit limit and held for review.",
        fields=[],
        order=order,
        credit_limit=_money(credit.get("credit_limit")),
        exposure=_money(credit.get("exposure")),
        order_value=_money(credit.get("order_value")),
    )


Refused = ValidationError | NotFound | Forbidden | Unavailable | Conflict


def refused(answer: Answer, *, not_found: str = "Not found.") -> Refused:
    """The typed error of a refused write (status 0: unreachable)."""
    slug = answer.problem_type.rsplit("/", 1)[-1]
    code = slug.replace("-", "_").upper() or "REFUSED"
    problem = answer.problem_type or None
    if answer.status == 0 or answer.status >= 500:
        return Unavailable(code="UNAVAILABLE", message=answer.detail or "Retry later.", fields=[])
    if answer.status == 404:
        return NotFound(code="NOT_FOUND", message=not_found, fields=[])
    if answer.status in (401, 403) and slug != "customer-not-permitted":
        return Forbidden(code="FORBIDDEN", message=answer.detail, fields=[])
    if answer.status == 403:  # another customer's: as unknown
        return NotFound(code="NOT_FOUND", message=not_found, fields=[])
    if answer.status == 409:
        return Conflict(code=code, message=answer.detail, fields=[], problem_type=problem)
    return ValidationError(
        code=code, message=answer.detail, fields=_fields(answer.body), problem_type=problem
    )


def validation(message: str, *fields: str) -> ValidationError:
    return ValidationError(
        code="VALIDATION_ERROR", message=message, fields=list(fields), problem_type=None
    )
