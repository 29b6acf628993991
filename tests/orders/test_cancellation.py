"""Cancellation with compensation through the real services: picked units are put back
to stock in the WMS, the fulfillment order is cancelled, the allocation released;
shipped units are refused with a clear problem and nothing changes."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import update

from process_apis.order_to_ship.db import metadata, orders
from process_apis.order_to_ship.flows.cancel_order import Plan, _still_as_planned
from process_apis.order_to_ship.flows.partners import Partners
from shared.db import Database
from shared.events.catalog import STREAM_WMS, PickPutAway
from shared.refusals import Refusal
from system_apis.wms.events import warehouse_subject
from tests.orders.helpers import (
    allocated,
    atp,
    body,
    command,
    events_of,
    filled_and_released,
    fulfillments,
    history_of,
    line_of,
    new_customer,
    path_of,
    pick,
    place,
    receipt,
    record_release,
    seed_released_order,
    settled,
    ship,
    stocked_item,
    uid,
    wait_order,
    wms_stock,
)
from tests.support.polling import wait_until
from tests.support.problems import assert_problem
from tests.support.stack import Stack


def released(stack: Stack, customer_id: str, *lines: tuple[str, int]) -> dict[str, Any]:
    placed = place(stack, body(customer_id, *lines))
    assert placed.status_code == 201, placed.text
    return settled(stack, placed.json()["order_id"], status="released")


def cancel_units(stack: Stack, order_id: str, key: str, *lines: tuple[str, int]) -> Any:
    return command(
        stack,
        order_id,
        "line-cancellations",
        json={"lines": [{"sku": sku, "quantity": q} for sku, q in lines]},
        key=key,
    )


def put_aways_of(stack: Stack, warehouse: str, order_id: str) -> list[PickPutAway]:
    found = [
        event.payload(PickPutAway)
        for event in events_of(stack, STREAM_WMS, warehouse_subject(warehouse))
        if event.type == "pick.put_away"
    ]
    return [put_away for put_away in found if put_away.order_id == order_id]


def test_cancel_after_a_partial_pick_puts_the_picked_units_back(
    full_stack: Stack, warehouse: str
) -> None:
    sku = stocked_item(full_stack, warehouse, 10)
    order = released(full_stack, new_customer(full_stack), (sku, 6))
    order_id = order["order_id"]
    (fo,) = fulfillments(full_stack, order_id)
    pick(full_stack, fo, [(sku, 4)])
    wait_order(full_stack, order_id, lambda o: line_of(o, sku)["picked"] == 4, "picked")
    assert wms_stock(full_stack, warehouse, sku)["picked"] == 4
    assert allocated(full_stack, sku) == 6

    response = command(full_stack, order_id, "cancel")
    assert response.status_code == 200, response.text
    cancelled = response.json()
    assert cancelled["status"] == "cancelled"
    line = line_of(cancelled, sku)
    assert (line["cancelled"], line["allocated"], line["released"], line["picked"]) == (6, 0, 0, 0)
    # The 4 picked are back on the shelf, free to pick; the WMS said so on the bus.
    stock = wms_stock(full_stack, warehouse, sku)
    assert (stock["on_hand"], stock["picked"], stock["available"]) == (10, 0, 10)
    put_aways = wait_until(lambda: put_aways_of(full_stack, warehouse, order_id), what="put-away")
    assert [(x.sku, x.quantity) for put_away in put_aways for x in put_away.lines] == [(sku, 4)]
    (fo,) = fulfillments(full_stack, order_id)
    assert fo["status"] == "cancelled"
    assert allocated(full_stack, sku) == 0 and atp(full_stack, sku) == 10
    assert path_of(full_stack, order_id) == ["pending", "accepted", "released", "cancelled"]
    # The put-away event arriving after the cancel changes nothing (applied once).
    assert settled(full_stack, order_id)["lines"] == cancelled["lines"]


def test_cancelling_units_once_per_key_picked_ones_last(full_stack: Stack, warehouse: str) -> None:
    a = stocked_item(full_stack, warehouse, 10)
    b = stocked_item(full_stack, warehouse, 10)
    order = released(full_stack, new_customer(full_stack), (a, 4), (b, 2))
    order_id = order["order_id"]
    (fo,) = fulfillments(full_stack, order_id)
    pick(full_stack, fo, [(a, 1)])
    wait_order(full_stack, order_id, lambda o: line_of(o, a)["picked"] == 1, "picked")

    key = uid("cancel")
    first = cancel_units(full_stack, order_id, key, (a, 2))
    assert first.status_code == 200, first.text
    again = cancel_units(full_stack, order_id, key, (a, 2))
    assert again.status_code == 200, again.text
    for answer in (first.json(), again.json()):
        line = line_of(answer, a)
        # Unpicked units go first: the picked one stays on the dock.
        assert (line["cancelled"], line["allocated"], line["picked"]) == (2, 2, 1)
    assert line_of(settled(full_stack, order_id), a)["cancelled"] == 2
    assert allocated(full_stack, a) == 2
    (fo,) = fulfillments(full_stack, order_id)
    assert {x["sku"]: x["quantity"] for x in fo["lines"]} == {a: 2, b: 2}
    assert wms_stock(full_stack, warehouse, a)["picked"] == 1

    # Two more: the last unpicked unit and the picked one, put back first.
    rest = cancel_units(full_stack, order_id, uid("cancel"), (a, 2))
    assert rest.status_code == 200, rest.text
    line = line_of(rest.json(), a)
    assert (line["cancelled"], line["allocated"], line["released"], line["picked"]) == (4, 0, 0, 0)
    assert rest.json()["status"] == "released"  # line b stands
    stock = wms_stock(full_stack, warehouse, a)
    assert (stock["picked"], stock["available"]) == (0, 10)
    assert allocated(full_stack, a) == 0 and allocated(full_stack, b) == 2
    assert [h["to"] for h in history_of(full_stack, order_id)][-1] == "released"


def test_shipped_units_cannot_be_cancelled(full_stack: Stack, warehouse: str) -> None:
    sku = stocked_item(full_stack, warehouse, 10)
    order = released(full_stack, new_customer(full_stack), (sku, 4))
    order_id = order["order_id"]
    (fo,) = fulfillments(full_stack, order_id)
    ship(full_stack, fo, [(sku, 3)])
    before = wait_order(
        full_stack,
        order_id,
        lambda o: o["status"] == "partially_shipped" and line_of(o, sku)["invoiced"] == 3,
    )

    too_many = cancel_units(full_stack, order_id, uid("cancel"), (sku, 2))
    problem = assert_problem(too_many, 409, "units-shipped")
    assert sku in problem["detail"]
    whole = command(full_stack, order_id, "cancel")
    assert_problem(whole, 409, "order-shipped")
    assert settled(full_stack, order_id) == before
    assert allocated(full_stack, sku) == 1

    # The one unit still open may go: nothing is left to ship.
    last = cancel_units(full_stack, order_id, uid("cancel"), (sku, 1))
    assert last.status_code == 200, last.text
    line = line_of(last.json(), sku)
    assert (line["shipped"], line["cancelled"], line["allocated"]) == (3, 1, 3)
    assert last.json()["status"] == "shipped"
    assert allocated(full_stack, sku) == 0
    assert_problem(command(full_stack, order_id, "cancel"), 409, "order-shipped")
    assert path_of(full_stack, order_id)[-2:] == ["partially_shipped", "shipped"]


def test_a_key_reused_for_other_units_is_refused(full_stack: Stack, warehouse: str) -> None:
    a = stocked_item(full_stack, warehouse, 10)
    b = stocked_item(full_stack, warehouse, 10)
    order_id = released(full_stack, new_customer(full_stack), (a, 4), (b, 4))["order_id"]
    key = uid("cancel")
    first = cancel_units(full_stack, order_id, key, (a, 1))
    assert first.status_code == 200, first.text
    other = cancel_units(full_stack, order_id, key, (b, 2))
    assert_problem(other, 422, "idempotency-key-reused")
    order = settled(full_stack, order_id)
    assert [line["cancelled"] for line in order["lines"]] == [1, 0]
    assert allocated(full_stack, a) == 3 and allocated(full_stack, b) == 4


def test_a_retry_of_a_cancellation_that_took_every_open_unit_replays_it(
    full_stack: Stack, warehouse: str
) -> None:
    a = stocked_item(full_stack, warehouse, 10)
    b = stocked_item(full_stack, warehouse, 10)
    order_id = released(full_stack, new_customer(full_stack), (a, 2), (b, 3))["order_id"]
    line_key, order_key = uid("cancel"), uid("cancel")
    first = cancel_units(full_stack, order_id, line_key, (a, 2))
    assert first.status_code == 200, first.text
    # The client did not see the answer and retries: the same cancellation, not a 409.
    again = cancel_units(full_stack, order_id, line_key, (a, 2))
    assert again.status_code == 200, again.text
    assert again.json()["lines"] == first.json()["lines"]
    last = cancel_units(full_stack, order_id, order_key, (b, 3))
    assert last.status_code == 200, last.text
    assert last.json()["status"] == "cancelled"
    retried = cancel_units(full_stack, order_id, order_key, (b, 3))
    assert retried.status_code == 200, retried.text
    assert retried.json() == settled(full_stack, order_id)
    assert allocated(full_stack, a) == allocated(full_stack, b) == 0
    assert [fo["status"] for fo in fulfillments(full_stack, order_id)] == ["cancelled"]


def test_the_same_cancellation_sent_at_once_cancels_once(full_stack: Stack, warehouse: str) -> None:
    sku = stocked_item(full_stack, warehouse, 10)
    order_id = released(full_stack, new_customer(full_stack), (sku, 6))["order_id"]
    key = uid("cancel")
    with ThreadPoolExecutor(4) as pool:
        answers = list(
            pool.map(lambda _: cancel_units(full_stack, order_id, key, (sku, 2)), range(4))
        )
    # Each answer is the cancellation, or "in progress, retry" while another runs it.
    assert {a.status_code for a in answers} <= {200, 409}, [a.text for a in answers]
    assert any(a.status_code == 200 for a in answers)
    for busy in (a for a in answers if a.status_code == 409):
        assert_problem(busy, 409, "order-in-progress")
    retry = cancel_units(full_stack, order_id, key, (sku, 2))
    assert retry.status_code == 200, retry.text
    line = line_of(settled(full_stack, order_id), sku)
    assert (line["cancelled"], line["allocated"], line["released"]) == (2, 4, 4)
    assert allocated(full_stack, sku) == 4
    (fo,) = fulfillments(full_stack, order_id)
    assert fo["lines"][0]["quantity"] == 4


def test_a_cancel_the_warehouse_outruns_is_abandoned_and_the_order_goes_on(
    full_stack: Stack, warehouse: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`tally simulate` found it (an order partially shipped to the end of the day): a
    cancel planned the units at the warehouse, the warehouse shipped them before the
    WMS was asked to cancel them, and the cancellation stayed open for good, so the
    order's backorder never filled."""
    sku = stocked_item(full_stack, warehouse, 5)
    placed = place(full_stack, body(new_customer(full_stack), (sku, 8), policy="partial"))
    assert placed.status_code == 201, placed.text
    order_id = placed.json()["order_id"]
    settled(full_stack, order_id, status="partially_allocated")  # 5 released, 3 waiting
    (fo,) = fulfillments(full_stack, order_id)
    cancel_lines = Partners.cancel_fulfillment_lines

    async def shipped_first(
        partners: Partners, fulfillment_order_id: str, key: str, lines: list[dict[str, Any]]
    ) -> None:
        await asyncio.to_thread(ship, full_stack, fo, [(sku, 5)])
        await cancel_lines(partners, fulfillment_order_id, key, lines)

    with monkeypatch.context() as patched:
        patched.setattr(Partners, "cancel_fulfillment_lines", shipped_first)
        outran = command(full_stack, order_id, "cancel")
    assert_problem(outran, 409, "units-shipped")
    order = wait_order(full_stack, order_id, lambda o: line_of(o, sku)["shipped"] == 5)
    line = line_of(order, sku)
    assert (order["status"], line["backordered"], line["cancelled"]) == ("partially_shipped", 3, 0)
    assert_problem(command(full_stack, order_id, "cancel"), 409, "order-shipped")

    # The backorder fills as if no cancel had been asked.
    receipt(full_stack, warehouse, sku, 3)
    order = filled_and_released(full_stack, order_id, sku)
    line = line_of(order, sku)
    assert (line["allocated"], line["released"], line["shipped"], line["cancelled"]) == (8, 8, 5, 0)


def test_what_the_warehouse_cancelled_before_it_was_outrun_stays_cancelled(
    full_stack: Stack, warehouse: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two fulfillment orders: the first cancelled at the warehouse, the second shipped
    before its cancellation reached the WMS. The first's units are cancelled on the
    order and their allocation given back; the order ends shipped."""
    sku = stocked_item(full_stack, warehouse, 5)
    placed = place(full_stack, body(new_customer(full_stack), (sku, 8), policy="partial"))
    assert placed.status_code == 201, placed.text
    order_id = placed.json()["order_id"]
    settled(full_stack, order_id, status="partially_allocated")
    receipt(full_stack, warehouse, sku, 3)
    wait_order(full_stack, order_id, lambda o: len(o["fulfillment_orders"]) == 2, "two FOs")
    fos = sorted(fulfillments(full_stack, order_id), key=lambda fo: fo["fulfillment_order_id"])
    first, last = fos
    cancel_lines = Partners.cancel_fulfillment_lines

    async def last_shipped_first(
        partners: Partners, fulfillment_order_id: str, key: str, lines: list[dict[str, Any]]
    ) -> None:
        if fulfillment_order_id == last["fulfillment_order_id"]:
            units = [(line["sku"], line["quantity"]) for line in last["lines"]]
            await asyncio.to_thread(ship, full_stack, last, units)
        await cancel_lines(partners, fulfillment_order_id, key, lines)

    with monkeypatch.context() as patched:
        patched.setattr(Partners, "cancel_fulfillment_lines", last_shipped_first)
        outran = command(full_stack, order_id, "cancel")
    assert_problem(outran, 409, "units-shipped")
    shipped = sum(line["quantity"] for line in last["lines"])
    order = wait_order(full_stack, order_id, lambda o: line_of(o, sku)["shipped"] == shipped)
    line = line_of(order, sku)
    assert (line["cancelled"], line["shipped"], line["backordered"]) == (8 - shipped, shipped, 0)
    assert order["status"] == "shipped"
    assert {
        fo["fulfillment_order_id"]: fo["status"] for fo in fulfillments(full_stack, order_id)
    } == {
        first["fulfillment_order_id"]: "cancelled",
        last["fulfillment_order_id"]: "shipped",
    }
    assert allocated(full_stack, sku) == 0 and atp(full_stack, sku) == 8 - shipped


def _plan_check(stack: Stack, order_id: str, plan: Plan, *, fill_asked: bool = False) -> None:
    """The cancel's check of its plan under the order's lock (``fill_asked``: with a
    fill of the order asked of availability and not recorded, as the filler marks it)."""

    async def run() -> None:
        db = Database(stack.settings("order_to_ship").database_url, metadata)
        try:
            async with db.transaction() as tx:
                asked = datetime.now(UTC) if fill_asked else None
                await tx.conn.execute(
                    update(orders).where(orders.c.order_id == order_id).values(fill_asked_at=asked)
                )
                await _still_as_planned(tx, order_id, plan)
        finally:
            await db.dispose()

    asyncio.run(run())


def test_a_cancel_planned_before_a_release_was_recorded_is_retried_not_a_500(
    stack: Stack,
) -> None:
    """`tally simulate --chaos` found it: the cancel's plan counts units as unreleased
    that the releaser recorded as released while the warehouse was asked; applying it
    failed (500). Under the order's lock the plan is checked and the caller retries."""
    customer_id = new_customer(stack)
    order_id = seed_released_order(stack, customer_id, [("SKU-A", 2, 100)], released=False)
    _plan_check(stack, order_id, Plan(unreleased={"SKU-A": 2}))  # still unreleased: it stands
    record_release(stack, order_id)
    with pytest.raises(Refusal) as refused:
        _plan_check(stack, order_id, Plan(unreleased={"SKU-A": 2}))
    assert (refused.value.status, refused.value.slug) == (409, "order-in-progress")


def test_a_cancel_planned_before_a_fill_was_recorded_or_while_one_is_asked_is_retried(
    stack: Stack,
) -> None:
    """A plan that counts units as backordered which a fill recorded meanwhile, or made
    while a fill of the order is asked of availability (decision 0063), would have
    availability forget a backorder it no longer has: the caller retries instead."""
    customer_id = new_customer(stack)
    order_id = seed_released_order(stack, customer_id, [("SKU-A", 2, 100)], released=False)
    _plan_check(stack, order_id, Plan(unreleased={"SKU-A": 2}))
    for plan, fill_asked in (
        (Plan(backordered={"SKU-A": 1}), False),  # the 2 units were filled meanwhile
        (Plan(unreleased={"SKU-A": 2}), True),
    ):
        with pytest.raises(Refusal) as refused:
            _plan_check(stack, order_id, plan, fill_asked=fill_asked)
        assert (refused.value.status, refused.value.slug) == (409, "order-in-progress")
