"""After acceptance: shipments from the WMS move the order; cancel compensates."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import REGISTRY

from shared.events.catalog import (
    STREAM_BILLING,
    STREAM_ORDERS,
    STREAM_WMS,
    OrderStatusChanged,
    ShipmentDispatched,
)
from tests.orders.helpers import (
    allocated,
    body,
    dispatch,
    events_of,
    fulfillment_orders,
    new_customer,
    new_item,
    orders_of,
    place,
    record_release,
    redelivered,
    seed_released_order,
    settled,
    ship,
    shipment_event,
    stocked_item,
)
from tests.support.events import invoice_issued
from tests.support.polling import wait_until
from tests.support.ports import free_port
from tests.support.stack import Stack, ThreadServer


def read(stack: Stack, order_id: str) -> dict[str, Any]:
    with stack.client("order_to_ship", "orders:read") as orders:
        response = orders.get(f"/orders/v1/orders/{order_id}")
    assert response.status_code == 200, response.text
    order: dict[str, Any] = response.json()
    return order


def wait_status(stack: Stack, order_id: str, status: str) -> dict[str, Any]:
    found: dict[str, Any] = wait_until(
        lambda: (order := read(stack, order_id))["status"] == status and order,
        what=f"{order_id} {status}",
    )
    return found


def order_events(stack: Stack, order_id: str, count: int) -> list[Any]:
    def probe() -> list[Any] | None:
        found = events_of(stack, STREAM_ORDERS, order_id)
        return found if len(found) >= count else None

    published: list[Any] = wait_until(probe, what=f"{count} events of {order_id}")
    return published


def cancel(stack: Stack, order_id: str) -> Any:
    with stack.client("order_to_ship", "orders:write") as orders:
        return orders.post(f"/orders/v1/orders/{order_id}/cancel")


def test_shipment_events_move_a_seeded_order_to_shipped(stack: Stack) -> None:
    """Needs only the orders API and the bus: the order is written straight to its DB."""
    customer_id = new_customer(stack)
    order_id = seed_released_order(stack, customer_id, [("SKU-A", 3, 100), ("SKU-B", 1, 50)])
    first = dispatch(stack, order_id, [("SKU-A", 2)])
    order = wait_status(stack, order_id, "partially_shipped")
    assert [line["shipped"] for line in order["lines"]] == [2, 0]
    (shipment,) = order["shipments"]
    assert shipment["carrier"] == "UPS"
    assert shipment["lines"] == [{"sku": "SKU-A", "quantity": 2}]
    # The same fact published again under a new id is applied once.
    stack.publish(STREAM_WMS, [redelivered(first)])
    dispatch(stack, order_id, [("SKU-A", 1), ("SKU-B", 1)])
    order = wait_status(stack, order_id, "shipped")
    assert [line["shipped"] for line in order["lines"]] == [3, 1]
    assert len(order["shipments"]) == 2
    assert cancel(stack, order_id).status_code == 409


def test_a_shipment_ahead_of_its_recorded_release_waits_for_it(stack: Stack) -> None:
    """The WMS took the release and the dock shipped before the releaser recorded the
    WMS's answer (`tally simulate` found it): the shipment waits and then applies, and
    its invoice is not refused later for units the order never counted as shipped."""
    customer_id = new_customer(stack)
    order_id = seed_released_order(stack, customer_id, [("SKU-A", 2, 100)], released=False)
    dispatch(stack, order_id, [("SKU-A", 2)])
    time.sleep(1.5)  # the consumer meets the shipment before the release is recorded
    # Not applied as a "lost race" (shipment recorded, line left unshipped) meanwhile.
    assert all(line["shipped"] == 0 for line in read(stack, order_id)["lines"])
    assert read(stack, order_id)["shipments"] == []
    record_release(stack, order_id)
    order = wait_status(stack, order_id, "shipped")
    assert [line["shipped"] for line in order["lines"]] == [2]
    assert len(order["shipments"]) == 1


def _parked_invoices() -> float:
    found = REGISTRY.get_sample_value(
        "tally_events_handled_total",
        {"group": "order_to_ship", "type": "invoice.issued", "outcome": "parked"},
    )
    return found or 0.0


def test_an_invoice_ahead_of_its_shipment_is_kept_and_applied_with_it(stack: Stack) -> None:
    """Billing answered the WMS's shipment before this service applied it (on a busy
    PostgreSQL day, most invoices): the invoice waits for its shipment without being
    parked and redelivered, and applies once, with it."""
    customer_id = new_customer(stack)
    order_id = seed_released_order(stack, customer_id, [("SKU-A", 2, 100)])
    shipment = shipment_event(order_id, [("SKU-A", 2)])
    shipment_id = shipment.payload(ShipmentDispatched).shipment_id
    invoice = invoice_issued(order_id, shipment_id, customer_id)
    parked_before = _parked_invoices()
    stack.publish(STREAM_BILLING, [invoice])
    time.sleep(1.5)  # the consumer meets the invoice before the shipment
    order = read(stack, order_id)
    assert order["shipments"] == [] and order["lines"][0]["invoiced"] == 0
    stack.publish(STREAM_BILLING, [redelivered(invoice)])  # published again: kept once
    time.sleep(0.5)
    stack.publish(STREAM_WMS, [shipment])
    order = wait_until(
        lambda: (o := read(stack, order_id))["lines"][0]["invoiced"] == 2 and o,
        what="the early invoice applied with its shipment",
    )
    assert order["status"] == "shipped"
    assert [(line["shipped"], line["invoiced"]) for line in order["lines"]] == [(2, 2)]
    assert [s["shipment_id"] for s in order["shipments"]] == [shipment_id]
    assert _parked_invoices() == parked_before
    # The invoice published once more after it applied changes nothing.
    version = order["version"]
    stack.publish(STREAM_BILLING, [redelivered(invoice)])
    time.sleep(1.0)
    assert read(stack, order_id)["version"] == version


def test_wms_shipment_moves_the_order_to_shipped(full_stack: Stack, warehouse: str) -> None:
    customer_id = new_customer(full_stack)
    sku = stocked_item(full_stack, warehouse, 10)
    placed = place(full_stack, body(customer_id, (sku, 4)))
    assert placed.status_code == 201, placed.text
    order_id = placed.json()["order_id"]
    settled(full_stack, order_id, status="released")
    (fo,) = fulfillment_orders(full_stack, order_id)
    ship(full_stack, fo, [(sku, 1)])
    order = wait_status(full_stack, order_id, "partially_shipped")
    assert order["lines"][0]["shipped"] == 1
    shipment = ship(full_stack, fo, [(sku, 3)])
    order = wait_status(full_stack, order_id, "shipped")
    assert order["lines"][0]["shipped"] == 4
    assert shipment["shipment_id"] in {s["shipment_id"] for s in order["shipments"]}
    response = cancel(full_stack, order_id)
    assert response.status_code == 409, response.text
    assert response.json()["type"] == "/problems/order-shipped"
    published = order_events(full_stack, order_id, 4)
    assert [e.type for e in published] == ["order.accepted"] + ["order.status_changed"] * 3
    # Numbered by the order's version (which also moves without a status change, e.g.
    # an invoice): strictly increasing, so a consumer applies every move in order.
    sequences = [e.sequence for e in published]
    assert sequences == sorted(set(sequences)) and sequences[0] == 1
    assert [e.payload(OrderStatusChanged).status for e in published[1:]] == [
        "released",
        "partially_shipped",
        "shipped",
    ]


def test_cancel_releases_the_allocation_and_the_fulfillment_order(
    full_stack: Stack,
    warehouse: str,
) -> None:
    customer_id = new_customer(full_stack)
    sku = stocked_item(full_stack, warehouse, 10)
    placed = place(full_stack, body(customer_id, (sku, 6)))
    assert placed.status_code == 201, placed.text
    order_id = placed.json()["order_id"]
    settled(full_stack, order_id, status="released")
    assert allocated(full_stack, sku) == 6
    response = cancel(full_stack, order_id)
    assert response.status_code == 200, response.text
    cancelled = response.json()
    assert cancelled["status"] == "cancelled"
    assert allocated(full_stack, sku) == 0
    assert [fo["status"] for fo in fulfillment_orders(full_stack, order_id)] == ["cancelled"]
    again = cancel(full_stack, order_id)
    assert again.status_code == 200
    assert again.json() == cancelled
    published = order_events(full_stack, order_id, 3)
    assert [(e.type, e.sequence) for e in published] == [
        ("order.accepted", 1),
        ("order.status_changed", 2),
        ("order.cancelled", 3),
    ]


def test_an_order_left_pending_by_an_outage_is_resumed(full_stack: Stack, warehouse: str) -> None:
    """A second orders instance on the same database cannot reach availability: the
    order stays pending (503). The running instance's resumer finishes it, and the
    client's retry with the same key replays the result."""
    customer_id = new_customer(full_stack)
    sku = stocked_item(full_stack, warehouse, 10)
    dead = {**full_stack.urls, "availability": f"http://127.0.0.1:{free_port()}"}
    settings = full_stack.settings("order_to_ship", service_urls=dead)
    key = f"resume-{customer_id}"
    broken_app = full_stack.app("order_to_ship", settings, resume_after=3600)
    with (
        ThreadServer(broken_app) as broken,
        full_stack.client("order_to_ship", "orders:write orders:read") as client,
    ):
        response = client.post(
            f"{broken.url}/orders/v1/orders",
            json=body(customer_id, (sku, 2)),
            headers={"Idempotency-Key": key},
        )
    # Availability could not answer: the order is kept, named, and answered 202.
    assert response.status_code == 202, response.text
    pending = response.json()
    assert pending["status"] == "pending"
    early = place(full_stack, body(customer_id, (sku, 2)), key)
    # A retry with the key gets the same order at once, never a 409 "in progress".
    assert early.status_code in (201, 202), early.text
    assert early.json()["order_id"] == pending["order_id"]
    (listed,) = orders_of(full_stack, customer_id)
    assert listed["order_id"] == pending["order_id"]
    wait_status(full_stack, pending["order_id"], "released")
    replay = place(full_stack, body(customer_id, (sku, 2)), key)
    assert replay.status_code == 201, replay.text
    assert replay.headers.get("idempotent-replayed") == "true"
    assert replay.json()["order_id"] == pending["order_id"]
    assert allocated(full_stack, sku) == 2


def test_a_shipment_for_an_unknown_order_is_ignored(stack: Stack) -> None:
    customer_id = new_customer(stack)
    order_id = seed_released_order(stack, customer_id, [(new_item(stack), 1, 100)])
    dispatch(stack, "ORD-does-not-exist", [("SKU-X", 1)])
    dispatch(stack, order_id, [(read(stack, order_id)["lines"][0]["sku"], 1)])
    wait_status(stack, order_id, "shipped")
