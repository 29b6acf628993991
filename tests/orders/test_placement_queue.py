"""Concurrent single placements taken together (decision 0060), through the real ERP,
availability and WMS: each caller is answered as its own saga would answer it; a
customer's concurrent orders are credit-checked one after another; one key placed
concurrently is one order; a turn that fails as a whole still places each order once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from process_apis.order_to_ship.flows import place_batch
from tests.orders.helpers import (
    allocated,
    body,
    history_of,
    new_customer,
    orders_of,
    place,
    settled,
    stocked_item,
    uid,
)
from tests.support.stack import Stack

LIMIT = 10_000  # minor units; an item costs 1250


def place_together(stack: Stack, orders: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    """Each (key, order) placed by its own caller, all at once."""
    with ThreadPoolExecutor(len(orders)) as pool:
        return list(pool.map(lambda keyed: place(stack, keyed[1], keyed[0]), orders))


def test_concurrent_orders_of_one_customer_are_credit_checked_in_turn(
    full_stack: Stack, warehouse: str
) -> None:
    """Six orders of 2,500 against a limit of 10,000 sent at once: four fit, whichever
    they are, and two are held; none slips past because another was read alongside."""
    customer_id = new_customer(full_stack, credit=LIMIT)
    sku = stocked_item(full_stack, warehouse, 20)
    answers = place_together(
        full_stack, [(uid("k"), body(customer_id, (sku, 2))) for _ in range(6)]
    )
    assert all(a.status_code == 201 for a in answers), [a.text for a in answers]
    statuses = sorted(a.json()["status"] for a in answers)
    assert statuses.count("on_hold") == 2, statuses
    assert len(orders_of(full_stack, customer_id)) == 6


def test_one_key_sent_by_several_callers_at_once_is_one_order(
    full_stack: Stack, warehouse: str
) -> None:
    customer_id = new_customer(full_stack)
    sku = stocked_item(full_stack, warehouse, 10)
    key, order = uid("same"), body(customer_id, (sku, 3))
    answers = place_together(full_stack, [(key, order)] * 4)
    assert all(a.status_code in (201, 202) for a in answers), [a.text for a in answers]
    assert len({a.json()["order_id"] for a in answers}) == 1
    (placed,) = orders_of(full_stack, customer_id)
    settled(full_stack, placed["order_id"])
    assert allocated(full_stack, sku) == 3


def test_orders_of_a_turn_that_fails_whole_are_each_placed_once(
    full_stack: Stack, warehouse: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The turn's pending write fails (a lost connection): each order is then placed by
    its own saga, once, and answered."""
    customer_id = new_customer(full_stack)
    sku = stocked_item(full_stack, warehouse, 10)
    write = place_batch._write_pending
    failed: list[int] = []

    async def fails_once(place: Any, new: list[Any]) -> None:
        if not failed:
            failed.append(len(new))
            raise ConnectionError("the database went away")
        await write(place, new)

    monkeypatch.setattr(place_batch, "_write_pending", fails_once)
    keys = [uid("k") for _ in range(4)]
    answers = place_together(full_stack, [(key, body(customer_id, (sku, 1))) for key in keys])
    assert failed, "the turn's write ran"
    assert all(a.status_code == 201 for a in answers), [a.text for a in answers]
    ids = {a.json()["order_id"] for a in answers}
    assert len(ids) == 4
    assert sorted(o["order_id"] for o in orders_of(full_stack, customer_id)) == sorted(ids)
    for order_id in ids:
        settled(full_stack, order_id)
    assert allocated(full_stack, sku) == 4
    # Sent again, the keys answer the same orders.
    again = place_together(full_stack, [(key, body(customer_id, (sku, 1))) for key in keys])
    assert {a.json()["order_id"] for a in again} == ids


def test_each_order_placed_beside_others_keeps_its_own_requests_correlation_id(
    full_stack: Stack, warehouse: str
) -> None:
    customer_id = new_customer(full_stack)
    sku = stocked_item(full_stack, warehouse, 10)

    def placed_with(cid: str) -> Any:
        headers = {"Idempotency-Key": uid("k"), "X-Correlation-Id": cid}
        with full_stack.client("order_to_ship", "orders:write orders:read") as orders:
            return orders.post(
                "/orders/v1/orders", json=body(customer_id, (sku, 1)), headers=headers
            )

    cids = [f"corr-{n}-{uid('c')}" for n in range(5)]
    with ThreadPoolExecutor(len(cids)) as pool:
        answers = list(pool.map(placed_with, cids))
    for cid, answer in zip(cids, answers, strict=True):
        assert answer.status_code == 201, answer.text
        moves = history_of(full_stack, answer.json()["order_id"])
        assert [m["to"] for m in moves][:2] == ["pending", "accepted"], moves
        assert {m["correlation_id"] for m in moves[:2]} == {cid}, moves
