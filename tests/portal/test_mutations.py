"""The six mutations over a real stack: each answers its payload or a typed error a UI
switches on (`__typename`), and the client's idempotencyKey makes a replay answer the
same result without doing anything twice."""

from __future__ import annotations

from typing import Any

import pytest

from tests.orders.helpers import new_customer, new_item, receive
from tests.portal.live import CHANNEL, Account, Live, new_account
from tests.support.polling import wait_until
from tests.support.stack import Stack

pytestmark = pytest.mark.slow

ERROR = "... on UserError { code message fields }"
ORDER = "order { id customerId status lines { sku quantity allocated cancelled } }"
PLACE = f"""mutation($input: PlaceOrderInput!, $key: String!) {{
  placeOrder(input: $input, idempotencyKey: $key) {{ __typename
    ... on OrderPlaced {{ {ORDER} }}
    ... on InsufficientStock {{ sku requested available shortages {{ sku available }} }}
    ... on CreditHold {{ {ORDER} creditLimit {{ amountMinor }} orderValue {{ amountMinor }} }}
    ... on ValidationError {{ problemType }}
    {ERROR} }} }}"""
CANCEL = f"""mutation($id: ID!, $key: String!, $lines: [LineInput!]) {{
  cancelOrder(orderId: $id, idempotencyKey: $key, lines: $lines) {{ __typename
    ... on OrderCancelled {{ {ORDER} }}
    ... on Conflict {{ problemType }}
    {ERROR} }} }}"""
RETURN = f"""mutation($id: ID!, $key: String!, $lines: [LineInput!]!) {{
  requestReturn(orderId: $id, idempotencyKey: $key, lines: $lines, reason: "damaged") {{
    __typename
    ... on ReturnRequested {{ return {{ id orderId status lines {{ sku authorized }} }} }}
    ... on ReturnExceedsShipped {{ sku shipped returned requested }}
    {ERROR} }} }}"""
HOLD = "cartHold { id status channel lines { sku quantity } orderId }"
CREATE_HOLD = f"""mutation($input: CartHoldInput!, $key: String!) {{
  createCartHold(input: $input, idempotencyKey: $key) {{ __typename
    ... on CartHoldCreated {{ {HOLD} }}
    ... on InsufficientStock {{ sku requested available }}
    {ERROR} }} }}"""
RELEASE_HOLD = f"""mutation($id: ID!, $key: String!) {{
  releaseCartHold(holdId: $id, idempotencyKey: $key) {{ __typename
    ... on CartHoldReleased {{ {HOLD} }}
    {ERROR} }} }}"""
FROM_HOLD = f"""mutation($id: ID!, $key: String!) {{
  placeOrderFromHold(holdId: $id, idempotencyKey: $key) {{ __typename
    ... on OrderPlaced {{ {ORDER} }}
    {ERROR} }} }}"""


def _order_input(sku: str, quantity: int, **more: Any) -> dict[str, Any]:
    return {"channel": CHANNEL, "lines": [{"sku": sku, "quantity": quantity}], **more}


def _count_orders(stack: Stack, customer_id: str) -> int:
    with stack.client("order_to_ship", "admin") as orders:
        listed = orders.get("/orders/v1/orders", params={"customer_id": customer_id})
    return len(listed.json()["items"])


@pytest.fixture(scope="module")
def stocked(live_stack: Stack, live_warehouse: str) -> str:
    sku = new_item(live_stack, price=1000)
    receive(live_stack, live_warehouse, sku, 40)
    return sku


@pytest.fixture(scope="module")
def shipped(live_stack: Stack, live_warehouse: str) -> Account:
    """Two orders of two units shipped; one unit of the first under return."""
    return new_account(live_stack, live_warehouse, 2)


async def _atp_reached(live: Live, sku: str, quantity: int) -> None:
    def ready() -> bool:
        with live.stack.client("availability", "inventory:read") as availability:
            found = availability.get(f"/availability/v1/items/{sku}").json()
        return int(found["available_to_promise"]) >= quantity

    wait_until(ready, what=f"{sku} available")


async def test_place_order_and_its_replay(live: Live, stocked: str) -> None:
    await _atp_reached(live, stocked, 3)
    customer = new_customer(live.stack)
    token = live.token(customer)
    variables = {"input": _order_input(stocked, 3), "key": "place-1"}

    first = (await live.data(token, PLACE, variables))["placeOrder"]
    again = (await live.data(token, PLACE, variables))["placeOrder"]

    assert first["__typename"] == "OrderPlaced", first
    assert first["order"]["customerId"] == customer
    assert first["order"]["lines"][0]["allocated"] == 3
    assert again == first  # the same order, answered again
    assert _count_orders(live.stack, customer) == 1


async def test_insufficient_stock_names_the_sku_and_what_is_available(
    live: Live, live_warehouse: str
) -> None:
    sku = new_item(live.stack)
    receive(live.stack, live_warehouse, sku, 5)
    await _atp_reached(live, sku, 5)
    customer = new_customer(live.stack)
    variables = {"input": _order_input(sku, 50), "key": "place-short"}

    result = (await live.data(live.token(customer), PLACE, variables))["placeOrder"]

    assert result["__typename"] == "InsufficientStock", result
    assert (result["sku"], result["requested"], result["available"]) == (sku, 50, 5)
    assert result["code"] == "INSUFFICIENT_STOCK"
    assert result["shortages"] == [{"sku": sku, "available": 5}]
    assert _count_orders(live.stack, customer) == 0


async def test_over_the_credit_limit_the_order_is_held_for_credit(live: Live, stocked: str) -> None:
    await _atp_reached(live, stocked, 2)
    customer = new_customer(live.stack, credit=500)
    variables = {"input": _order_input(stocked, 2), "key": "place-credit"}

    result = (await live.data(live.token(customer), PLACE, variables))["placeOrder"]

    assert result["__typename"] == "CreditHold", result
    assert result["code"] == "CREDIT_HOLD"
    assert result["order"]["status"] == "on_hold"
    assert result["creditLimit"] == {"amountMinor": 500}
    assert result["orderValue"] == {"amountMinor": 2000}


async def test_validation_errors_name_the_problem_and_place_nothing(
    live: Live, stocked: str
) -> None:
    customer = new_customer(live.stack)
    token = live.token(customer)

    unknown = await live.data(
        token, PLACE, {"input": _order_input("SKU-NOPE", 1), "key": "place-unknown"}
    )
    bad_key = await live.data(token, PLACE, {"input": _order_input(stocked, 1), "key": "not a key"})
    no_lines = await live.data(
        token, PLACE, {"input": {"channel": CHANNEL, "lines": []}, "key": "place-empty"}
    )

    assert unknown["placeOrder"]["__typename"] == "ValidationError"
    assert unknown["placeOrder"]["code"] == "UNKNOWN_SKU"
    assert unknown["placeOrder"]["problemType"].endswith("/unknown-sku")
    assert bad_key["placeOrder"]["fields"] == ["idempotencyKey"]
    assert no_lines["placeOrder"]["fields"] == ["lines"]
    assert _count_orders(live.stack, customer) == 0


async def test_cancel_an_order_whole_or_some_units(live: Live, stocked: str) -> None:
    await _atp_reached(live, stocked, 4)
    customer = new_customer(live.stack)
    token = live.token(customer)
    placed = [
        (await live.data(token, PLACE, {"input": _order_input(stocked, 2), "key": f"c-{n}"}))[
            "placeOrder"
        ]["order"]["id"]
        for n in (1, 2)
    ]

    whole = {"id": placed[0], "key": "cancel-whole"}
    cancelled = (await live.data(token, CANCEL, whole))["cancelOrder"]
    replayed = (await live.data(token, CANCEL, whole))["cancelOrder"]
    some = {"id": placed[1], "key": "cancel-one", "lines": [{"sku": stocked, "quantity": 1}]}
    one_unit = (await live.data(token, CANCEL, some))["cancelOrder"]
    one_again = (await live.data(token, CANCEL, some))["cancelOrder"]

    assert cancelled["__typename"] == "OrderCancelled", cancelled
    assert cancelled["order"]["status"] == "cancelled"
    assert replayed["order"]["status"] == "cancelled"
    assert one_unit["__typename"] == "OrderCancelled", one_unit
    assert one_unit["order"]["lines"][0]["cancelled"] == 1
    assert one_again["order"]["lines"][0]["cancelled"] == 1  # not twice


async def test_cancel_refusals_are_typed(live: Live, shipped: Account) -> None:
    token = live.token(shipped.customer_id)

    unknown = (await live.data(token, CANCEL, {"id": "ORD-NOPE", "key": "x-1"}))["cancelOrder"]
    too_late = (await live.data(token, CANCEL, {"id": shipped.shipped_order_ids[0], "key": "x-2"}))[
        "cancelOrder"
    ]

    assert unknown["__typename"] == "NotFound"
    assert unknown["code"] == "NOT_FOUND"
    assert too_late["__typename"] == "Conflict", too_late
    assert too_late["problemType"].endswith("/order-shipped")


async def test_request_a_return_its_replay_and_one_above_what_shipped(
    live: Live, shipped: Account
) -> None:
    token = live.token(shipped.customer_id)
    order_id = shipped.shipped_order_ids[1]
    one = {"id": order_id, "key": "rma-1", "lines": [{"sku": shipped.sku, "quantity": 1}]}

    first = (await live.data(token, RETURN, one))["requestReturn"]
    again = (await live.data(token, RETURN, one))["requestReturn"]
    above = (
        await live.data(
            token,
            RETURN,
            {"id": order_id, "key": "rma-2", "lines": [{"sku": shipped.sku, "quantity": 5}]},
        )
    )["requestReturn"]

    assert first["__typename"] == "ReturnRequested", first
    assert first["return"]["orderId"] == order_id
    assert first["return"]["status"] == "authorized"
    assert first["return"]["lines"] == [{"sku": shipped.sku, "authorized": 1}]
    assert again == first
    assert above["__typename"] == "ReturnExceedsShipped", above
    assert (above["sku"], above["shipped"], above["returned"], above["requested"]) == (
        shipped.sku,
        2,
        1,
        5,
    )


async def test_cart_hold_created_replayed_turned_into_an_order_and_released(
    live: Live, live_warehouse: str
) -> None:
    sku = new_item(live.stack)
    receive(live.stack, live_warehouse, sku, 6)
    await _atp_reached(live, sku, 6)
    customer = new_customer(live.stack)
    token = live.token(customer)
    hold_input = {"channel": CHANNEL, "lines": [{"sku": sku, "quantity": 2}], "ttlSeconds": 600}

    created = (await live.data(token, CREATE_HOLD, {"input": hold_input, "key": "h-1"}))[
        "createCartHold"
    ]
    replayed = (await live.data(token, CREATE_HOLD, {"input": hold_input, "key": "h-1"}))[
        "createCartHold"
    ]
    short_input = {**hold_input, "lines": [{"sku": sku, "quantity": 60}]}
    short = (await live.data(token, CREATE_HOLD, {"input": short_input, "key": "h-2"}))[
        "createCartHold"
    ]

    assert created["__typename"] == "CartHoldCreated", created
    assert created["cartHold"]["status"] == "active"
    assert created["cartHold"]["lines"] == [{"sku": sku, "quantity": 2}]
    assert replayed == created
    assert short["__typename"] == "InsufficientStock", short
    assert (short["sku"], short["available"]) == (sku, 4)

    hold_id = created["cartHold"]["id"]
    placed = (await live.data(token, FROM_HOLD, {"id": hold_id, "key": "fh-1"}))[
        "placeOrderFromHold"
    ]
    placed_again = (await live.data(token, FROM_HOLD, {"id": hold_id, "key": "fh-1"}))[
        "placeOrderFromHold"
    ]
    assert placed["__typename"] == "OrderPlaced", placed
    assert placed["order"]["lines"][0]["quantity"] == 2
    assert placed_again == placed
    assert _count_orders(live.stack, customer) == 1

    other = (await live.data(token, CREATE_HOLD, {"input": hold_input, "key": "h-3"}))[
        "createCartHold"
    ]
    release = {"id": other["cartHold"]["id"], "key": "r-1"}
    released = (await live.data(token, RELEASE_HOLD, release))["releaseCartHold"]
    released_again = (await live.data(token, RELEASE_HOLD, release))["releaseCartHold"]
    unknown = (await live.data(token, RELEASE_HOLD, {"id": "HOLD-NOPE", "key": "r-2"}))[
        "releaseCartHold"
    ]
    assert released["__typename"] == "CartHoldReleased", released
    assert released["cartHold"]["status"] == "released"
    assert released_again == released
    assert unknown["__typename"] == "NotFound"


async def test_a_token_without_the_write_scope_gets_forbidden(live: Live, stocked: str) -> None:
    customer = new_customer(live.stack)
    token = live.token(customer, "portal orders:read billing:read inventory:read")

    result = (await live.data(token, PLACE, {"input": _order_input(stocked, 1), "key": "ro-1"}))[
        "placeOrder"
    ]

    assert result["__typename"] == "Forbidden", result
    assert result["code"] == "FORBIDDEN"
