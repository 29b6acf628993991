"""Credit holds, an operator's release or rejection, and every illegal move refused,
through the real ERP, WMS, availability, orders and billing services."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from process_apis.order_to_ship.flows.erp_sync import ErpSync
from process_apis.order_to_ship.flows.partners import Partners
from tests.orders.helpers import (
    allocated,
    atp,
    body,
    command,
    deliver,
    fulfillments,
    history_of,
    line_of,
    new_customer,
    new_item,
    path_of,
    place,
    receive,
    settled,
    ship,
    stocked_item,
    stopped,
    wait_order,
)
from tests.support.money import usd
from tests.support.polling import wait_until
from tests.support.problems import assert_problem
from tests.support.stack import Stack

ADMIN = "orders:admin orders:read"
LIMIT = 10_000  # minor units; an item costs 1250


def held_order(stack: Stack, warehouse: str, quantity: int = 10) -> tuple[str, str, str]:
    """(customer, sku, order) of an order over the customer's credit limit."""
    customer_id = new_customer(stack, credit=LIMIT)
    sku = stocked_item(stack, warehouse, 20)
    placed = place(stack, body(customer_id, (sku, quantity)))
    assert placed.status_code == 201, placed.text
    assert placed.json()["status"] == "on_hold", placed.text
    return customer_id, sku, placed.json()["order_id"]


def test_an_order_over_the_limit_is_held_allocated_and_not_released(
    full_stack: Stack, warehouse: str
) -> None:
    customer_id = new_customer(full_stack, credit=LIMIT)
    sku = stocked_item(full_stack, warehouse, 20)
    placed = place(full_stack, body(customer_id, (sku, 10)))
    assert placed.status_code == 201, placed.text
    answer = placed.json()
    assert (answer["status"], answer["hold_reason"]) == ("on_hold", "credit")
    assert answer["credit"] == {
        "credit_limit": usd(LIMIT),
        "exposure": usd(0),
        "order_value": usd(12_500),
    }
    order = settled(full_stack, answer["order_id"], status="on_hold")
    assert (line_of(order, sku)["allocated"], line_of(order, sku)["released"]) == (10, 0)
    # The stock is the order's, but no warehouse works on it.
    assert allocated(full_stack, sku) == 10 and atp(full_stack, sku) == 10
    assert fulfillments(full_stack, answer["order_id"]) == []
    assert order["fulfillment_orders"] == []
    assert path_of(full_stack, answer["order_id"]) == ["pending", "on_hold"]


def test_exposure_counts_the_open_orders(full_stack: Stack, warehouse: str) -> None:
    customer_id = new_customer(full_stack, credit=LIMIT)
    sku = stocked_item(full_stack, warehouse, 20)
    first = place(full_stack, body(customer_id, (sku, 6)))  # 7,500 within 10,000
    assert first.status_code == 201, first.text
    assert first.json()["status"] != "on_hold"
    assert first.json()["hold_reason"] is None
    second = place(full_stack, body(customer_id, (sku, 3)))  # 3,750 more: 11,250
    assert second.status_code == 201, second.text
    assert second.json()["status"] == "on_hold"
    assert second.json()["credit"] == {
        "credit_limit": usd(LIMIT),
        "exposure": usd(7_500),
        "order_value": usd(3_750),
    }
    settled(full_stack, first.json()["order_id"], status="released")
    assert fulfillments(full_stack, second.json()["order_id"]) == []
    assert allocated(full_stack, sku) == 9


def test_release_hold_sends_the_order_to_the_warehouse(full_stack: Stack, warehouse: str) -> None:
    _, sku, order_id = held_order(full_stack, warehouse)
    response = command(
        full_stack, order_id, "release-hold", scopes=ADMIN, json={"reason": "paid upfront"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] in ("accepted", "released")
    assert response.json()["hold_reason"] is None
    order = settled(full_stack, order_id, status="released")
    assert line_of(order, sku)["released"] == 10
    (fo,) = fulfillments(full_stack, order_id)
    assert (fo["warehouse_id"], fo["lines"][0]["quantity"]) == (warehouse, 10)
    assert allocated(full_stack, sku) == 10
    history = history_of(full_stack, order_id)
    assert [h["to"] for h in history] == ["pending", "on_hold", "accepted", "released"]
    assert history[2]["cause"].startswith("hold_released")


@pytest.mark.parametrize("action", ["release-hold", "reject"])
def test_a_hold_is_not_decided_while_a_cancellation_of_it_is_unfinished(
    full_stack: Stack, warehouse: str, action: str
) -> None:
    """A customer's cancel met availability down: its plan (the held units, unreleased)
    is stored and not recorded. An operator's release then would queue those units for
    a warehouse while the cancel's retry gives them back: the simulated day found the
    order shipped, its allocation released and its backorder never filled. The
    decision waits (409 order-in-progress); the cancel's retry finishes it."""
    _, sku, order_id = held_order(full_stack, warehouse)
    with stopped(full_stack, "availability"):
        interrupted = command(full_stack, order_id, "cancel")
    assert interrupted.status_code == 503, interrupted.text
    assert settled(full_stack, order_id)["status"] == "on_hold"
    decided = command(full_stack, order_id, action, scopes=ADMIN, json={"reason": "reviewed"})
    assert_problem(decided, 409, "order-in-progress")
    assert fulfillments(full_stack, order_id) == []
    retried = command(full_stack, order_id, "cancel")
    assert retried.status_code == 200, retried.text
    line = line_of(retried.json(), sku)
    assert (retried.json()["status"], line["released"], line["cancelled"]) == ("cancelled", 0, 10)
    assert allocated(full_stack, sku) == 0 and atp(full_stack, sku) == 20
    assert fulfillments(full_stack, order_id) == []
    late = command(full_stack, order_id, action, scopes=ADMIN, json={"reason": "reviewed"})
    assert late.status_code == 409, late.text


def test_hold_then_reject_gives_the_stock_back(full_stack: Stack, warehouse: str) -> None:
    _, sku, order_id = held_order(full_stack, warehouse)
    assert atp(full_stack, sku) == 10
    response = command(full_stack, order_id, "reject", scopes=ADMIN, json={"reason": "no pay"})
    assert response.status_code == 200, response.text
    rejected = response.json()
    assert rejected["status"] == "rejected"
    line = line_of(rejected, sku)
    assert (line["allocated"], line["released"], line["cancelled"]) == (0, 0, 10)
    assert atp(full_stack, sku) == 20 and allocated(full_stack, sku) == 0
    assert fulfillments(full_stack, order_id) == []
    assert settled(full_stack, order_id)["status"] == "rejected"
    assert path_of(full_stack, order_id) == ["pending", "on_hold", "rejected"]
    assert history_of(full_stack, order_id)[-1]["cause"] == "rejected: no pay"


@pytest.mark.parametrize("action", ["release-hold", "reject"])
def test_a_partner_cannot_decide_on_a_hold(full_stack: Stack, warehouse: str, action: str) -> None:
    customer_id, sku, order_id = held_order(full_stack, warehouse)
    before = settled(full_stack, order_id)
    for bound_to in (customer_id, None):
        response = command(
            full_stack, order_id, action, scopes="orders:write orders:read", customer_id=bound_to
        )
        assert_problem(response, 403, "insufficient-scope", correlated=False)
    assert settled(full_stack, order_id) == before
    assert fulfillments(full_stack, order_id) == []
    assert allocated(full_stack, sku) == 10


def test_release_hold_of_an_order_not_on_hold_is_refused(full_stack: Stack, warehouse: str) -> None:
    customer_id = new_customer(full_stack)
    sku = stocked_item(full_stack, warehouse, 5)
    placed = place(full_stack, body(customer_id, (sku, 2)))
    order_id = placed.json()["order_id"]
    before = settled(full_stack, order_id, status="released")
    response = command(full_stack, order_id, "release-hold", scopes=ADMIN)
    problem = assert_problem(response, 409, "illegal-transition")
    assert problem["detail"] == f"Order {order_id} is released; it cannot become accepted."
    assert (problem["order_status"], problem["requested_status"]) == ("released", "accepted")
    assert settled(full_stack, order_id) == before
    assert len(fulfillments(full_stack, order_id)) == 1


# -- every illegal transition ------------------------------------------------------------


def _placed(stack: Stack, warehouse: str, stock: int, quantity: int, policy: str) -> str:
    sku = stocked_item(stack, warehouse, stock) if stock else new_item(stack)
    placed = place(stack, body(new_customer(stack), (sku, quantity), policy=policy))
    assert placed.status_code == 201, placed.text
    order_id: str = placed.json()["order_id"]
    return order_id


def _shipped(stack: Stack, warehouse: str, of: int) -> tuple[str, dict[str, Any]]:
    order_id = _placed(stack, warehouse, 4, 4, "reject")
    order = settled(stack, order_id, status="released")
    (fo,) = fulfillments(stack, order_id)
    shipment = ship(stack, fo, [(order["lines"][0]["sku"], of)])
    return order_id, shipment


def _in_state(stack: Stack, warehouse: str, status: str) -> str:
    """An order brought to ``status`` through the APIs."""
    if status == "on_hold":
        return held_order(stack, warehouse)[2]
    if status == "released":
        return _placed(stack, warehouse, 4, 2, "reject")
    if status == "backordered":
        return _placed(stack, warehouse, 0, 2, "partial")
    if status == "partially_allocated":
        return _placed(stack, warehouse, 1, 2, "partial")
    if status == "partially_shipped":
        return _shipped(stack, warehouse, 1)[0]
    if status == "rejected":
        order_id = held_order(stack, warehouse)[2]
        assert command(stack, order_id, "reject", scopes=ADMIN).status_code == 200
        return order_id
    if status == "cancelled":
        order_id = _placed(stack, warehouse, 4, 2, "reject")
        settled(stack, order_id)
        assert command(stack, order_id, "cancel").status_code == 200
        return order_id
    order_id, shipment = _shipped(stack, warehouse, 4)
    if status in ("delivered", "completed"):
        wait_order(stack, order_id, lambda o: o["lines"][0]["shipped"] == 4)
        deliver(stack, shipment["shipment_id"])
    return order_id


HOLD_ONLY = {"release-hold": "illegal-transition", "reject": "illegal-transition"}
SHIPPED = {**HOLD_ONLY, "cancel": "order-shipped"}
# What each state refuses (on_hold refuses none of the three: release-hold, reject and
# cancel are all its moves, tested above and in test_cancellation.py).
REFUSED: dict[str, dict[str, str]] = {
    "released": HOLD_ONLY,
    "backordered": HOLD_ONLY,
    "partially_allocated": HOLD_ONLY,
    "partially_shipped": SHIPPED,
    "shipped": SHIPPED,
    "delivered": SHIPPED,
    "completed": SHIPPED,
    "cancelled": HOLD_ONLY,
    "rejected": {**HOLD_ONLY, "cancel": "illegal-transition"},
}


def _unchanged(stack: Stack, order_id: str) -> Callable[[], None]:
    before = settled(stack, order_id)
    history = history_of(stack, order_id)

    def check() -> None:
        after = settled(stack, order_id)
        assert (after["status"], after["version"], after["lines"]) == (
            before["status"],
            before["version"],
            before["lines"],
        )
        assert history_of(stack, order_id) == history

    return check


@pytest.mark.parametrize("status", sorted(REFUSED))
def test_every_illegal_transition_is_refused_and_changes_nothing(
    full_stack: Stack, warehouse: str, status: str
) -> None:
    def refuse_all(order_id: str) -> None:
        unchanged = _unchanged(full_stack, order_id)
        for action, slug in REFUSED[status].items():
            response = command(full_stack, order_id, action, scopes=f"{ADMIN} orders:write")
            problem = assert_problem(response, 409, slug)
            if slug == "illegal-transition":
                assert problem["order_status"] == status, problem
            unchanged()
        if status == "cancelled":  # cancelling it again answers it as it is
            again = command(full_stack, order_id, "cancel")
            assert again.status_code == 200, again.text
            assert again.json()["status"] == "cancelled"
            unchanged()

    if status == "delivered":
        # Billing invoices each shipment, and an invoiced delivered order is completed:
        # with billing stopped the order stays delivered.
        with stopped(full_stack, "billing"):
            order_id = _in_state(full_stack, warehouse, status)
            wait_order(full_stack, order_id, lambda o: o["status"] == status)
            refuse_all(order_id)
        wait_order(full_stack, order_id, lambda o: o["status"] == "completed")
        return
    order_id = _in_state(full_stack, warehouse, status)
    # Settled: billing's invoice of what shipped has come back too (it moves the version).
    wait_order(
        full_stack,
        order_id,
        lambda o: o["status"] == status and all(x["invoiced"] == x["shipped"] for x in o["lines"]),
    )
    refuse_all(order_id)


def test_a_held_order_may_be_cancelled_and_gives_its_stock_back(
    full_stack: Stack, warehouse: str
) -> None:
    _, sku, order_id = held_order(full_stack, warehouse)
    response = command(full_stack, order_id, "cancel")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    assert line_of(response.json(), sku)["cancelled"] == 10
    assert atp(full_stack, sku) == 20 and allocated(full_stack, sku) == 0
    assert fulfillments(full_stack, order_id) == []
    assert_problem(command(full_stack, order_id, "release-hold", scopes=ADMIN), 409)
    assert path_of(full_stack, order_id) == ["pending", "on_hold", "cancelled"]


def test_a_held_backorder_fills_once_the_hold_is_released(
    full_stack: Stack, warehouse: str
) -> None:
    customer_id = new_customer(full_stack, credit=LIMIT)
    sku = stocked_item(full_stack, warehouse, 6)
    placed = place(full_stack, body(customer_id, (sku, 10), policy="partial"))
    assert placed.status_code == 201, placed.text
    assert placed.json()["status"] == "on_hold"
    order_id = placed.json()["order_id"]
    line = line_of(settled(full_stack, order_id), sku)
    assert (line["allocated"], line["backordered"]) == (6, 4)

    # Stock arrives while the order is held: its backorder does not take it.
    receive(full_stack, warehouse, sku, 4)
    held = settled(full_stack, order_id)
    assert held["status"] == "on_hold" and line_of(held, sku)["backordered"] == 4
    assert atp(full_stack, sku) == 4

    response = command(full_stack, order_id, "release-hold", scopes=ADMIN)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "partially_allocated"
    order = wait_order(
        full_stack, order_id, lambda o: o["status"] == "released", "backorder filled"
    )
    line = line_of(order, sku)
    assert (line["allocated"], line["released"], line["backordered"]) == (10, 10, 0)
    assert allocated(full_stack, sku) == 10 and atp(full_stack, sku) == 0


def test_two_operators_releasing_one_hold_release_it_once(
    full_stack: Stack, warehouse: str
) -> None:
    _, sku, order_id = held_order(full_stack, warehouse)
    with ThreadPoolExecutor(4) as pool:
        answers = list(
            pool.map(
                lambda _: command(full_stack, order_id, "release-hold", scopes=ADMIN), range(4)
            )
        )
    assert sorted(a.status_code for a in answers) == [200, 409, 409, 409], [a.text for a in answers]
    for refused in (a for a in answers if a.status_code == 409):
        assert_problem(refused, 409, "illegal-transition")
    order = settled(full_stack, order_id, status="released")
    assert line_of(order, sku)["released"] == 10
    assert len(fulfillments(full_stack, order_id)) == 1
    assert path_of(full_stack, order_id).count("accepted") == 1


def release_holds(stack: Stack, order_ids: list[str], **client: Any) -> Any:
    with stack.client("order_to_ship", ADMIN, **client) as orders:
        return orders.post(
            "/orders/v1/orders/hold-releases",
            json={"order_ids": order_ids, "reason": "credit desk review"},
        )


def test_a_credit_desk_releases_its_reviewed_list_in_one_call(
    full_stack: Stack, warehouse: str
) -> None:
    """Each held order of the list is released as its own release-hold would release
    it; the others are refused as that call would refuse them, changing nothing."""
    _, _, cancelling = held_order(full_stack, warehouse)
    with stopped(full_stack, "availability"):
        assert command(full_stack, cancelling, "cancel").status_code == 503
    # Placed after the outage: one call at a time, the first closes a circuit left
    # half-open (it admits one probe; the list's reads run concurrently).
    _, sku_a, held_a = held_order(full_stack, warehouse)
    _, sku_b, held_b = held_order(full_stack, warehouse, quantity=9)
    customer_id = new_customer(full_stack)
    sku_c = stocked_item(full_stack, warehouse, 5)
    accepted = place(full_stack, body(customer_id, (sku_c, 2))).json()["order_id"]
    ids = [held_a, "NO-SUCH-ORDER", accepted, cancelling, held_b]

    answer = release_holds(full_stack, ids)
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [r["order_id"] for r in results] == ids
    first, unknown, not_held, in_progress, last = results
    for released in (first, last):
        assert "refusal" not in released
        assert released["order"]["status"] in ("accepted", "released")
        assert released["order"]["hold_reason"] is None
    assert (unknown["refusal"]["status"], unknown["refusal"]["type"]) == (
        404,
        "/problems/order-not-found",
    )
    assert (not_held["refusal"]["status"], not_held["refusal"]["type"]) == (
        409,
        "/problems/illegal-transition",
    )
    assert (in_progress["refusal"]["status"], in_progress["refusal"]["type"]) == (
        409,
        "/problems/order-in-progress",
    )
    for order_id, sku, quantity in ((held_a, sku_a, 10), (held_b, sku_b, 9)):
        order = settled(full_stack, order_id, status="released")
        assert line_of(order, sku)["released"] == quantity
        assert len(fulfillments(full_stack, order_id)) == 1
        assert history_of(full_stack, order_id)[2]["cause"] == "hold_released: credit desk review"
    assert settled(full_stack, cancelling)["status"] == "on_hold"
    assert fulfillments(full_stack, cancelling) == []

    again = release_holds(full_stack, [held_a, held_b])
    assert again.status_code == 200, again.text
    assert [r["refusal"]["type"] for r in again.json()["results"]] == [
        "/problems/illegal-transition"
    ] * 2
    assert len(fulfillments(full_stack, held_a)) == 1


def test_a_release_list_naming_an_order_twice_is_refused_whole(
    full_stack: Stack, warehouse: str
) -> None:
    customer_id, _, order_id = held_order(full_stack, warehouse)
    assert_problem(release_holds(full_stack, [order_id, order_id]), 422, "duplicate-order-id")
    assert settled(full_stack, order_id)["status"] == "on_hold"
    # A partner never decides on holds, its own included.
    refused = release_holds(full_stack, [order_id], customer_id=customer_id)
    assert refused.status_code == 403, refused.text
    assert settled(full_stack, order_id)["status"] == "on_hold"


def erp_exposure(stack: Stack, customer_id: str) -> int:
    with stack.client("erp", "erp:read") as erp:
        response = erp.get(f"/erp/v1/customers/{customer_id}/credit")
    assert response.status_code == 200, response.text
    exposure: int = response.json()["exposure"]["amount_minor"]
    return exposure


def test_rejected_and_cancelled_orders_leave_the_exposure(
    full_stack: Stack, warehouse: str
) -> None:
    customer_id, sku, held_id = held_order(full_stack, warehouse)
    open_order = place(full_stack, body(customer_id, (sku, 2)))  # held too: 12,500 open
    assert open_order.json()["status"] == "on_hold", open_order.text
    wait_until(lambda: erp_exposure(full_stack, customer_id) == 15_000, what="ERP exposure")
    assert command(full_stack, held_id, "reject", scopes=ADMIN).status_code == 200
    assert command(full_stack, open_order.json()["order_id"], "cancel").status_code == 200
    # Once the ERP has heard of both, nothing of them counts: 6 units (7,500) fit.
    wait_until(lambda: erp_exposure(full_stack, customer_id) == 0, what="ERP exposure 0")
    fits = place(full_stack, body(customer_id, (sku, 6)))
    assert fits.status_code == 201, fits.text
    assert fits.json()["status"] != "on_hold"
    assert fits.json()["credit"]["exposure"] == usd(0)


def test_an_order_the_erp_hears_of_during_the_next_ones_check_still_counts(
    full_stack: Stack, warehouse: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CI found it: the credit check read the ERP's exposure, then this service's orders
    the ERP had not heard of. An order booked in the ERP between the two reads counted
    in neither, and the next order went through over the limit."""
    customer_id = new_customer(full_stack, credit=LIMIT)
    sku = stocked_item(full_stack, warehouse, 20)
    may_book, recorded = threading.Event(), threading.Event()
    checks: list[str] = []
    book, record, terms = Partners.put_sales_orders, ErpSync._synced, Partners.order_terms

    async def booked_when_let(partners: Partners, bodies: list[dict[str, Any]]) -> Any:
        await asyncio.to_thread(may_book.wait, 30)
        return await book(partners, bodies)

    async def recorded_and_told(sync: ErpSync, heads: list[Any]) -> None:
        await record(sync, heads)
        if any(head.customer_id == customer_id for head in heads):
            recorded.set()

    async def booked_meanwhile(partners: Partners, customer: str, skus: list[str]) -> Any:
        answer = await terms(partners, customer, skus)
        checks.append(customer)
        if len(checks) == 2:  # the second order's check: the first is booked now
            may_book.set()
            await asyncio.to_thread(recorded.wait, 30)
        return answer

    with monkeypatch.context() as patched:
        patched.setattr(Partners, "put_sales_orders", booked_when_let)
        patched.setattr(ErpSync, "_synced", recorded_and_told)
        patched.setattr(Partners, "order_terms", booked_meanwhile)
        first = place(full_stack, body(customer_id, (sku, 10)))  # 12,500: over, held
        assert first.json()["status"] == "on_hold", first.text
        second = place(full_stack, body(customer_id, (sku, 2)))
    assert recorded.is_set()  # the first was booked between the second's two reads
    assert second.status_code == 201, second.text
    assert second.json()["status"] == "on_hold", second.text
    assert second.json()["credit"]["exposure"] == usd(12_500)
