"""Backorders that fill by themselves, through the real ERP, WMS, availability and
orders services: a receipt in the WMS is all it takes (no call to the orders API)."""

from __future__ import annotations

import asyncio
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest

from process_apis.order_to_ship.flows.partners import Partners
from tests.orders.helpers import (
    allocated,
    allocation_of,
    atp,
    body,
    command,
    filled_and_released,
    fulfillments,
    history_of,
    line_of,
    new_customer,
    new_item,
    path_of,
    place,
    receipt,
    receive,
    settled,
    ship,
    stocked_item,
    wait_order,
)
from tests.support.polling import wait_until
from tests.support.stack import Stack


def test_partial_shipment_then_a_receipt_fills_the_backorder_and_it_ships(
    full_stack: Stack, warehouse: str
) -> None:
    customer_id = new_customer(full_stack)
    sku = stocked_item(full_stack, warehouse, 5)
    placed = place(full_stack, body(customer_id, (sku, 8), policy="partial"))
    assert placed.status_code == 201, placed.text
    assert placed.json()["status"] == "partially_allocated"
    order_id = placed.json()["order_id"]
    order = settled(full_stack, order_id, status="partially_allocated")
    line = line_of(order, sku)
    assert (line["allocated"], line["released"], line["backordered"]) == (5, 5, 3)
    assert allocated(full_stack, sku) == 5 and atp(full_stack, sku) == 0
    (first,) = fulfillments(full_stack, order_id)
    assert first["lines"][0]["quantity"] == 5

    ship(full_stack, first, [(sku, 5)])
    order = wait_order(full_stack, order_id, lambda o: o["status"] == "partially_shipped")
    assert line_of(order, sku)["shipped"] == 5
    assert line_of(order, sku)["backordered"] == 3

    # Stock arrives at the dock: nothing is asked of the orders API.
    receipt(full_stack, warehouse, sku, 3)
    order = filled_and_released(full_stack, order_id, sku)
    line = line_of(order, sku)
    assert (line["allocated"], line["released"], line["shipped"]) == (8, 8, 5)
    assert order["status"] == "partially_shipped"  # 3 still to ship
    fos = fulfillments(full_stack, order_id)
    assert len(fos) == 2
    second = next(fo for fo in fos if fo["fulfillment_order_id"] != first["fulfillment_order_id"])
    assert second["lines"][0]["quantity"] == 3
    assert second["status"] == "released"
    assert allocated(full_stack, sku) == 3  # 5 shipped, 3 claimed for the new FO
    assert atp(full_stack, sku) == 0

    ship(full_stack, second, [(sku, 3)])
    order = wait_order(full_stack, order_id, lambda o: o["status"] == "shipped")
    assert line_of(order, sku)["shipped"] == 8
    assert len(order["shipments"]) == 2
    assert path_of(full_stack, order_id) == [
        "pending",
        "partially_allocated",
        "partially_shipped",
        "shipped",
    ]


def test_the_oldest_backorder_fills_first(full_stack: Stack, warehouse: str) -> None:
    sku = new_item(full_stack)
    older_customer, newer_customer = new_customer(full_stack), new_customer(full_stack)
    older = place(full_stack, body(older_customer, (sku, 4), policy="partial"))
    newer = place(full_stack, body(newer_customer, (sku, 4), policy="partial"))
    assert older.status_code == newer.status_code == 201, (older.text, newer.text)
    assert older.json()["status"] == newer.json()["status"] == "backordered"
    older_id, newer_id = older.json()["order_id"], newer.json()["order_id"]

    receipt(full_stack, warehouse, sku, 4)
    order = wait_order(full_stack, older_id, lambda o: o["status"] == "released", "filled")
    assert line_of(order, sku)["released"] == 4
    assert len(fulfillments(full_stack, older_id)) == 1
    newer_order = settled(full_stack, newer_id)
    assert newer_order["status"] == "backordered"
    assert line_of(newer_order, sku)["backordered"] == 4
    assert fulfillments(full_stack, newer_id) == []
    assert allocated(full_stack, sku) == 4

    receipt(full_stack, warehouse, sku, 4)
    wait_order(full_stack, newer_id, lambda o: o["status"] == "released", "filled")
    assert path_of(full_stack, older_id) == ["pending", "backordered", "accepted", "released"]


def test_a_fill_refused_for_one_order_leaves_the_others_filled(
    full_stack: Stack, warehouse: str
) -> None:
    """The waiting orders of a sku are filled in one call to availability: the oldest
    one's allocation released behind the order service's back is refused there, and
    the two after it still fill."""
    sku = new_item(full_stack)
    customer_id = new_customer(full_stack)
    ids = []
    for _ in range(3):
        placed = place(full_stack, body(customer_id, (sku, 2), policy="partial"))
        assert placed.status_code == 201 and placed.json()["status"] == "backordered"
        ids.append(placed.json()["order_id"])
    with full_stack.client("availability", "inventory:write") as availability:
        released = availability.post(f"/availability/v1/allocations/{ids[0]}/release")
    assert released.status_code == 200, released.text

    receipt(full_stack, warehouse, sku, 4)
    for order_id in ids[1:]:
        order = wait_order(full_stack, order_id, lambda o: o["status"] == "released", "filled")
        assert line_of(order, sku)["released"] == 2
    refused = settled(full_stack, ids[0])
    assert refused["status"] == "backordered" and line_of(refused, sku)["backordered"] == 2
    assert fulfillments(full_stack, ids[0]) == []
    assert allocated(full_stack, sku) == 4


def test_a_ship_complete_order_fills_all_or_nothing(full_stack: Stack, warehouse: str) -> None:
    a, b = new_item(full_stack), stocked_item(full_stack, warehouse, 1)
    placed = place(
        full_stack, body(new_customer(full_stack), (a, 3), (b, 2), policy="ship_complete")
    )
    assert placed.status_code == 201, placed.text
    order_id = placed.json()["order_id"]
    order = settled(full_stack, order_id)
    # Ship-complete: nothing is claimed while a line is short (b's one unit stays free).
    assert order["status"] == "backordered"
    assert [(x["allocated"], x["backordered"]) for x in order["lines"]] == [(0, 3), (0, 2)]
    assert allocated(full_stack, b) == 0 and atp(full_stack, b) == 1
    newer = place(full_stack, body(new_customer(full_stack), (b, 2), policy="partial"))
    assert newer.status_code == 201, newer.text
    newer_id = newer.json()["order_id"]
    assert line_of(settled(full_stack, newer_id), b)["backordered"] == 1
    before = settled(full_stack, order_id)
    changes_before = history_of(full_stack, order_id)

    # Enough of a, one more of b: the older order is tried first and cannot fill whole,
    # so it takes nothing; the newer partial order takes the unit of b.
    receipt(full_stack, warehouse, a, 3)
    receipt(full_stack, warehouse, b, 1)
    wait_order(full_stack, newer_id, lambda o: o["status"] == "released", "filled")
    order = settled(full_stack, order_id)
    assert order["status"] == "backordered"
    assert [(x["allocated"], x["backordered"]) for x in order["lines"]] == [(0, 3), (0, 2)]
    assert fulfillments(full_stack, order_id) == []
    assert allocated(full_stack, a) == 0 and atp(full_stack, a) == 3
    # The attempts that filled nothing left the order as it was: no new version, no
    # history row (only the next attempt's key moved on).
    assert order["version"] == before["version"]
    assert history_of(full_stack, order_id) == changes_before

    receipt(full_stack, warehouse, b, 2)
    order = wait_order(full_stack, order_id, lambda o: o["status"] == "released", "filled")
    assert [(x["allocated"], x["released"], x["backordered"]) for x in order["lines"]] == [
        (3, 3, 0),
        (2, 2, 0),
    ]
    (fo,) = fulfillments(full_stack, order_id)
    assert sorted((x["sku"], x["quantity"]) for x in fo["lines"]) == sorted([(a, 3), (b, 2)])
    # Filled under a later key than the empty attempts': one new version for the fill.
    assert [change["to"] for change in history_of(full_stack, order_id)][-1] == "released"
    assert allocated(full_stack, a) == 3 and allocated(full_stack, b) == 4


def test_short_closing_a_line_cancels_its_backordered_units(
    full_stack: Stack, warehouse: str
) -> None:
    customer_id = new_customer(full_stack)
    a = stocked_item(full_stack, warehouse, 2)
    b = stocked_item(full_stack, warehouse, 1)
    placed = place(full_stack, body(customer_id, (a, 5), (b, 4), policy="partial"))
    assert placed.status_code == 201, placed.text
    order_id = placed.json()["order_id"]
    settled(full_stack, order_id, status="partially_allocated")

    response = command(full_stack, order_id, f"lines/{a}/short-close")
    assert response.status_code == 200, response.text
    closed = line_of(response.json(), a)
    assert (closed["allocated"], closed["backordered"], closed["cancelled"]) == (2, 0, 3)
    assert line_of(response.json(), b)["backordered"] == 3  # the other line stands
    assert response.json()["status"] == "partially_allocated"
    alloc_lines = {x["sku"]: x for x in allocation_of(full_stack, order_id)["lines"]}
    assert alloc_lines[a]["backordered"] == 0 and alloc_lines[a]["allocated"] == 2
    assert alloc_lines[b]["backordered"] == 3

    # Availability forgot them: a receipt of a fills nothing on this order.
    receive(full_stack, warehouse, a, 3)
    receipt(full_stack, warehouse, b, 3)
    order = wait_order(full_stack, order_id, lambda o: line_of(o, b)["backordered"] == 0)
    assert order["status"] == "released"
    assert line_of(order, a)["allocated"] == 2
    assert allocated(full_stack, a) == 2
    assert atp(full_stack, a) == 3

    unknown = command(full_stack, order_id, "lines/SKU-nope/short-close")
    assert unknown.status_code == 404, unknown.text


def test_cancelling_the_whole_backorder(full_stack: Stack, warehouse: str) -> None:
    customer_id = new_customer(full_stack)
    a = stocked_item(full_stack, warehouse, 3)
    b = new_item(full_stack)
    placed = place(full_stack, body(customer_id, (a, 5), (b, 2), policy="partial"))
    assert placed.status_code == 201, placed.text
    order_id = placed.json()["order_id"]
    settled(full_stack, order_id, status="partially_allocated")

    response = command(full_stack, order_id, "backorders/cancel")
    assert response.status_code == 200, response.text
    order = response.json()
    assert [(x["allocated"], x["backordered"], x["cancelled"]) for x in order["lines"]] == [
        (3, 0, 2),
        (0, 0, 2),
    ]
    # What is left is allocated and at the warehouse.
    assert order["status"] == "released"
    assert [x["backordered"] for x in allocation_of(full_stack, order_id)["lines"]] == [0, 0]
    again = command(full_stack, order_id, "backorders/cancel")
    assert again.status_code == 200, again.text
    assert again.json()["lines"] == order["lines"]

    receive(full_stack, warehouse, b, 2)
    assert atp(full_stack, b) == 2
    assert settled(full_stack, order_id)["lines"] == order["lines"]
    assert allocated(full_stack, b) == 0
    assert path_of(full_stack, order_id)[-1] == "released"


def test_another_orders_cancellation_fills_a_backorder(full_stack: Stack, warehouse: str) -> None:
    sku = stocked_item(full_stack, warehouse, 5)
    first = place(full_stack, body(new_customer(full_stack), (sku, 5)))
    assert first.status_code == 201, first.text
    settled(full_stack, first.json()["order_id"], status="released")
    waiting = place(full_stack, body(new_customer(full_stack), (sku, 3), policy="partial"))
    assert waiting.status_code == 201, waiting.text
    assert waiting.json()["status"] == "backordered"

    cancelled = command(full_stack, first.json()["order_id"], "cancel")
    assert cancelled.status_code == 200, cancelled.text
    order = wait_order(
        full_stack, waiting.json()["order_id"], lambda o: o["status"] == "released", "filled"
    )
    assert line_of(order, sku)["released"] == 3
    assert allocated(full_stack, sku) == 3 and atp(full_stack, sku) == 2


def test_a_cancelled_partially_allocated_order_leaves_no_backorder(
    full_stack: Stack, warehouse: str
) -> None:
    sku = stocked_item(full_stack, warehouse, 2)
    placed = place(full_stack, body(new_customer(full_stack), (sku, 5), policy="partial"))
    assert placed.status_code == 201, placed.text
    order_id = placed.json()["order_id"]
    settled(full_stack, order_id, status="partially_allocated")
    response = command(full_stack, order_id, "cancel")
    assert response.status_code == 200, response.text
    line = line_of(response.json(), sku)
    assert (line["allocated"], line["backordered"], line["cancelled"]) == (0, 0, 5)
    assert [x["backordered"] for x in allocation_of(full_stack, order_id)["lines"]] == [0]
    receive(full_stack, warehouse, sku, 3)
    assert atp(full_stack, sku) == 5 and allocated(full_stack, sku) == 0
    assert settled(full_stack, order_id)["lines"] == response.json()["lines"]
    assert [fo["status"] for fo in fulfillments(full_stack, order_id)] == ["cancelled"]


def test_short_closing_after_a_partial_shipment_ships_the_order(
    full_stack: Stack, warehouse: str
) -> None:
    sku = stocked_item(full_stack, warehouse, 5)
    placed = place(full_stack, body(new_customer(full_stack), (sku, 8), policy="partial"))
    assert placed.status_code == 201, placed.text
    order_id = placed.json()["order_id"]
    settled(full_stack, order_id, status="partially_allocated")
    (fo,) = fulfillments(full_stack, order_id)
    ship(full_stack, fo, [(sku, 5)])
    wait_order(full_stack, order_id, lambda o: o["status"] == "partially_shipped")

    # No more is coming: the rest of the line is closed, and what shipped is the order.
    response = command(full_stack, order_id, f"lines/{sku}/short-close")
    assert response.status_code == 200, response.text
    line = line_of(response.json(), sku)
    assert (line["shipped"], line["backordered"], line["cancelled"]) == (5, 0, 3)
    assert response.json()["status"] == "shipped"
    receipt(full_stack, warehouse, sku, 3)
    assert path_of(full_stack, order_id)[-2:] == ["partially_shipped", "shipped"]
    wait_until(lambda: atp(full_stack, sku) == 3, what="ATP of the receipt")
    assert allocated(full_stack, sku) == 0
    assert len(fulfillments(full_stack, order_id)) == 1


def test_a_cancel_while_a_fill_is_asked_waits_for_it_and_then_cancels_everything(
    full_stack: Stack, warehouse: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`tally simulate` found it (an order partially shipped to the end of the day): the
    filler had asked availability to fill an order's backorder when a cancel planned
    to have availability forget it; availability refused (the units were allocated by
    then), the cancellation stayed open for good with its fulfillment order cancelled at
    the warehouse, and the fill shipped. Now the cancel waits for the fill's answer to
    be recorded (decision 0063) and then cancels the filled units too."""
    customer_id = new_customer(full_stack)
    sku = stocked_item(full_stack, warehouse, 2)
    placed = place(full_stack, body(customer_id, (sku, 5), policy="partial"))
    assert placed.status_code == 201, placed.text
    order_id = placed.json()["order_id"]
    settled(full_stack, order_id, status="partially_allocated")  # 2 released, 3 waiting
    fill_many = Partners.fill_many
    customer = ThreadPoolExecutor(max_workers=1)
    cancels: list[Future[Any]] = []

    async def cancelled_meanwhile(
        partners: Partners, asks: list[tuple[str, str, dict[str, Any]]]
    ) -> dict[str, Any]:
        answers = await fill_many(partners, asks)
        if not cancels and any(order_id == asked for asked, _, _ in asks):
            # The customer's cancel arrives before this answer is recorded.
            cancels.append(customer.submit(command, full_stack, order_id, "cancel"))
            await asyncio.sleep(0.3)
        return answers

    with monkeypatch.context() as patched, customer:
        patched.setattr(Partners, "fill_many", cancelled_meanwhile)
        receipt(full_stack, warehouse, sku, 3)
        wait_until(lambda: bool(cancels), what="a cancel sent while the fill was asked")
        answer = cancels[0].result(timeout=30)
    assert answer.status_code == 200, answer.text
    order = answer.json()
    line = line_of(order, sku)
    assert (order["status"], line["cancelled"], line["allocated"]) == ("cancelled", 5, 0)
    assert {fo["status"] for fo in fulfillments(full_stack, order_id)} == {"cancelled"}
    assert allocated(full_stack, sku) == 0 and atp(full_stack, sku) == 5


def test_a_little_stock_is_offered_to_as_many_waiting_orders_as_it_can_serve(
    full_stack: Stack, warehouse: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two units come back for a sku six orders wait for: availability is asked to fill
    the oldest order, which cannot take them (it ships complete, and its other sku has
    none), then the next two, which take one each; the last three are not asked at all
    (decision 0065: a fill call per returned unit would ask every waiting order)."""
    sku, missing = new_item(full_stack), new_item(full_stack)
    oldest = place(
        full_stack, body(new_customer(full_stack), (sku, 3), (missing, 1), policy="ship_complete")
    )
    assert oldest.status_code == 201 and oldest.json()["status"] == "backordered", oldest.text
    ids = [oldest.json()["order_id"]]
    for _ in range(5):
        placed = place(full_stack, body(new_customer(full_stack), (sku, 1), policy="partial"))
        assert placed.status_code == 201 and placed.json()["status"] == "backordered"
        ids.append(placed.json()["order_id"])
    fill_many = Partners.fill_many
    asked: list[list[str]] = []

    async def counted(
        partners: Partners, asks: list[tuple[str, str, dict[str, Any]]]
    ) -> dict[str, Any]:
        asked.append([order_id for order_id, _, _ in asks])
        return await fill_many(partners, asks)

    with monkeypatch.context() as patched:
        patched.setattr(Partners, "fill_many", counted)
        receipt(full_stack, warehouse, sku, 2)
        for order_id in ids[1:3]:
            order = wait_order(full_stack, order_id, lambda o: o["status"] == "released", "filled")
            assert line_of(order, sku)["released"] == 1
    assert asked == [ids[:1], ids[1:3]]
    assert settled(full_stack, ids[0])["status"] == "backordered"
    for order_id in ids[3:]:
        assert line_of(settled(full_stack, order_id), sku)["backordered"] == 1
    assert allocated(full_stack, sku) == 2 and atp(full_stack, sku) == 0
