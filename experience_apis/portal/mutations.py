"""The portal's mutations. Each takes the client's ``idempotencyKey`` and passes it to
the process API as the Idempotency-Key (prefixed with the mutation's name, so one key
reused for two different mutations never collides): the same key answers the same
result again. Each answers its payload or a typed error (results.py); nothing here
decides a rule: the process APIs refuse or accept, the portal names the outcome."""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import quote

import msgspec
import strawberry

from experience_apis.portal.context import Caller, PortalContext
from experience_apis.portal.objects import Order, Return
from experience_apis.portal.results import (
    CartHold,
    CartHoldCreated,
    CartHoldReleased,
    Conflict,
    CreditHold,
    Forbidden,
    InsufficientStock,
    NotFound,
    OrderCancelled,
    OrderPlaced,
    Refused,
    ReturnExceedsShipped,
    ReturnRequested,
    Unavailable,
    ValidationError,
    credit_hold,
    insufficient_stock,
    refused,
    return_exceeds,
    validation,
)
from experience_apis.portal.upstream import Answer, well_formed
from experience_apis.portal.wire import HoldDoc, OrderDoc, RmaDoc
from shared.models import Identifier

Info = strawberry.Info[PortalContext, None]
KEY = re.compile(r"^[\x21-\x7e]{1,200}$")
MAX_LINES = 100

PlaceOrderResult = Annotated[
    OrderPlaced
    | InsufficientStock
    | CreditHold
    | ValidationError
    | NotFound
    | Forbidden
    | Conflict
    | Unavailable,
    strawberry.union("PlaceOrderResult"),
]
CancelOrderResult = Annotated[
    OrderCancelled | NotFound | Conflict | ValidationError | Forbidden | Unavailable,
    strawberry.union("CancelOrderResult"),
]
RequestReturnResult = Annotated[
    ReturnRequested
    | ReturnExceedsShipped
    | NotFound
    | Conflict
    | ValidationError
    | Forbidden
    | Unavailable,
    strawberry.union("RequestReturnResult"),
]
CreateCartHoldResult = Annotated[
    CartHoldCreated | InsufficientStock | ValidationError | NotFound | Forbidden | Unavailable,
    strawberry.union("CreateCartHoldResult"),
]
ReleaseCartHoldResult = Annotated[
    CartHoldReleased | NotFound | ValidationError | Forbidden | Unavailable,
    strawberry.union("ReleaseCartHoldResult"),
]


@strawberry.input
class LineInput:
    sku: str
    quantity: int


@strawberry.input
class PlaceOrderInput:
    channel: str
    lines: list[LineInput]
    policy: str = strawberry.field(
        default="reject", description="reject, ship_complete or partial."
    )
    ship_to_id: strawberry.ID | None = strawberry.field(
        default=None, description="One of the customer's ship-tos (default: the first)."
    )
    customer_id: strawberry.ID | None = strawberry.field(
        default=None, description="Staff only: the customer to order for (others: their own)."
    )


@strawberry.input
class CartHoldInput:
    channel: str
    lines: list[LineInput]
    ttl_seconds: int = 3600
    customer_id: strawberry.ID | None = strawberry.field(
        default=None, description="Staff only: the customer to hold for (others: their own)."
    )


def _key(name: str, key: str) -> str | None:
    return f"portal.{name}.{key}" if KEY.match(key) else None


def _customer(caller: Caller, named: strawberry.ID | None) -> str | None:
    """Whom the write is for: a bound client's own customer, or the one staff names."""
    bound = caller.principal.customer_id
    if bound is not None:
        return bound if named in (None, bound) else None
    return str(named) if caller.is_staff and named is not None else None


def _lines(lines: list[LineInput]) -> list[dict[str, Any]]:
    return [{"sku": line.sku, "quantity": line.quantity} for line in lines]


def _bad_lines(lines: list[LineInput]) -> ValidationError | None:
    if not lines or len(lines) > MAX_LINES:
        return validation(f"Give 1 to {MAX_LINES} lines.", "lines")
    return None


def _order(answer: Answer) -> Order:
    return Order.of(msgspec.convert(answer.body, OrderDoc, strict=False))


def _placed(
    answer: Answer,
) -> OrderPlaced | CreditHold | InsufficientStock | Refused:
    if answer.status in (200, 201, 202):
        order = _order(answer)
        if answer.body.get("status") == "on_hold":
            return credit_hold(order, answer.body.get("credit"))
        return OrderPlaced(order=order)
    if answer.status == 409 and answer.problem_type.endswith("/insufficient-stock"):
        return insufficient_stock(answer)
    return refused(answer, not_found="No such customer, sku or hold.")


async def place_order(info: Info, input: PlaceOrderInput, idempotency_key: str) -> PlaceOrderResult:
    caller = info.context.caller
    key = _key("placeOrder", idempotency_key)
    if key is None:
        return validation("idempotencyKey: 1 to 200 printable ASCII characters.", "idempotencyKey")
    customer = _customer(caller, input.customer_id)
    if customer is None:
        return NotFound(code="NOT_FOUND", message="No such customer.", fields=["customerId"])
    bad = _bad_lines(input.lines)
    if bad is not None:
        return bad
    body: dict[str, Any] = {
        "customer_id": customer,
        "channel": input.channel,
        "lines": _lines(input.lines),
        "policy": input.policy,
    }
    if input.ship_to_id is not None:
        body["ship_to"] = {"ship_to_id": str(input.ship_to_id)}
    return _placed(await caller.apis.write("orders", "/orders/v1/orders", body, key))


async def place_order_from_hold(
    info: Info,
    hold_id: strawberry.ID,
    idempotency_key: str,
    policy: str = "reject",
    ship_to_id: strawberry.ID | None = None,
) -> PlaceOrderResult:
    """Converts the cart hold as it is (its lines, its channel) into an order."""
    caller = info.context.caller
    key = _key("placeOrderFromHold", idempotency_key)
    if key is None:
        return validation("idempotencyKey: 1 to 200 printable ASCII characters.", "idempotencyKey")
    hold: HoldDoc | None = await caller.apis.hold(str(hold_id))
    if (
        hold is None
        or hold.customer_id is None
        or _customer(caller, strawberry.ID(hold.customer_id)) is None
    ):
        return NotFound(code="NOT_FOUND", message="No such cart hold.", fields=["holdId"])
    quantities: dict[str, int] = {}
    for line in hold.lines:
        quantities[line.sku] = quantities.get(line.sku, 0) + line.quantity
    body: dict[str, Any] = {
        "customer_id": hold.customer_id,
        "channel": hold.channel,
        "lines": [{"sku": s, "quantity": q} for s, q in quantities.items()],
        "policy": policy,
        "hold_id": hold.hold_id,
    }
    if ship_to_id is not None:
        body["ship_to"] = {"ship_to_id": str(ship_to_id)}
    return _placed(await caller.apis.write("orders", "/orders/v1/orders", body, key))


async def cancel_order(
    info: Info,
    order_id: strawberry.ID,
    idempotency_key: str,
    lines: list[LineInput] | None = None,
    reason: str | None = None,
) -> CancelOrderResult:
    """The whole order without ``lines``; else those units of those lines."""
    caller = info.context.caller
    key = _key("cancelOrder", idempotency_key)
    if key is None:
        return validation("idempotencyKey: 1 to 200 printable ASCII characters.", "idempotencyKey")
    if not well_formed(str(order_id), Identifier):
        return NotFound(code="NOT_FOUND", message="No such order.", fields=["orderId"])
    base = f"/orders/v1/orders/{quote(str(order_id), safe='')}"
    if lines is None:
        answer = await caller.apis.write("orders", f"{base}/cancel", None, key)
    else:
        bad = _bad_lines(lines)
        if bad is not None:
            return bad
        body: dict[str, Any] = {"lines": _lines(lines)}
        if reason is not None:
            body["reason"] = reason
        answer = await caller.apis.write("orders", f"{base}/line-cancellations", body, key)
    if answer.status == 200:
        return OrderCancelled(order=_order(answer))
    return refused(answer, not_found="No such order.")


async def request_return(
    info: Info,
    order_id: strawberry.ID,
    lines: list[LineInput],
    idempotency_key: str,
    reason: str | None = None,
) -> RequestReturnResult:
    caller = info.context.caller
    key = _key("requestReturn", idempotency_key)
    if key is None:
        return validation("idempotencyKey: 1 to 200 printable ASCII characters.", "idempotencyKey")
    if not well_formed(str(order_id), Identifier):
        return NotFound(code="NOT_FOUND", message="No such order.", fields=["orderId"])
    bad = _bad_lines(lines)
    if bad is not None:
        return bad
    body: dict[str, Any] = {"lines": _lines(lines)}
    if reason is not None:
        body["reason"] = reason
    path = f"/orders/v1/orders/{quote(str(order_id), safe='')}/returns"
    answer = await caller.apis.write("orders", path, body, key)
    if answer.status in (200, 201):
        rma = Return.of(msgspec.convert(answer.body, RmaDoc, strict=False))
        return ReturnRequested(rma=rma)
    if answer.status == 409 and answer.problem_type.endswith("/return-exceeds-shipped"):
        return return_exceeds(answer)
    return refused(answer, not_found="No such order.")


async def create_cart_hold(
    info: Info,
    input: CartHoldInput,
    idempotency_key: str,
) -> CreateCartHoldResult:
    caller = info.context.caller
    key = _key("createCartHold", idempotency_key)
    if key is None:
        return validation("idempotencyKey: 1 to 200 printable ASCII characters.", "idempotencyKey")
    customer = _customer(caller, input.customer_id)
    if customer is None:
        return NotFound(code="NOT_FOUND", message="No such customer.", fields=["customerId"])
    bad = _bad_lines(input.lines)
    if bad is not None:
        return bad
    body = {
        "channel": input.channel,
        "lines": _lines(input.lines),
        "customer_id": customer,
        "ttl_seconds": input.ttl_seconds,
    }
    answer = await caller.apis.write("availability", "/availability/v1/holds", body, key)
    if answer.status in (200, 201):
        hold = CartHold.of(msgspec.convert(answer.body, HoldDoc, strict=False))
        return CartHoldCreated(cart_hold=hold)
    if answer.status == 409 and answer.problem_type.endswith("/insufficient-stock"):
        return insufficient_stock(answer)
    result = refused(answer)
    if isinstance(result, NotFound | Conflict):
        return validation(result.message)
    return result


async def release_cart_hold(
    info: Info, hold_id: strawberry.ID, idempotency_key: str
) -> ReleaseCartHoldResult:
    caller = info.context.caller
    key = _key("releaseCartHold", idempotency_key)
    if key is None:
        return validation("idempotencyKey: 1 to 200 printable ASCII characters.", "idempotencyKey")
    if not well_formed(str(hold_id), Identifier):
        return NotFound(code="NOT_FOUND", message="No such cart hold.", fields=["holdId"])
    path = f"/availability/v1/holds/{quote(str(hold_id), safe='')}/release"
    answer = await caller.apis.write("availability", path, None, key)
    if answer.status == 200:
        hold = CartHold.of(msgspec.convert(answer.body, HoldDoc, strict=False))
        return CartHoldReleased(cart_hold=hold)
    result = refused(answer, not_found="No such cart hold.")
    if isinstance(result, Conflict):
        return validation(result.message)
    return result


@strawberry.type
class Mutation:
    place_order: PlaceOrderResult = strawberry.mutation(resolver=place_order)
    cancel_order: CancelOrderResult = strawberry.mutation(resolver=cancel_order)
    request_return: RequestReturnResult = strawberry.mutation(resolver=request_return)
    create_cart_hold: CreateCartHoldResult = strawberry.mutation(resolver=create_cart_hold)
    release_cart_hold: ReleaseCartHoldResult = strawberry.mutation(resolver=release_cart_hold)
    place_order_from_hold: PlaceOrderResult = strawberry.mutation(resolver=place_order_from_hold)
