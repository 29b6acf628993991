"""The warehouse's and the carrier's facts move the order: a short pick backorders or
cancels the missing units (per the order's policy), a delivery makes it ``delivered``
and billing's invoice ``completed``, a carrier delay shows its new promise."""

from __future__ import annotations

from typing import Any

from tests.orders.helpers import (
    allocated,
    atp,
    body,
    deliver,
    fulfillments,
    line_of,
    new_customer,
    path_of,
    place,
    settled,
    ship,
    stocked_item,
    stopped,
    wait_order,
    wms_post,
    wms_stock,
)
from tests.support.stack import Stack


def released(stack: Stack, warehouse: str, stock: int, quantity: int, policy: str) -> Any:
    sku = stocked_item(stack, warehouse, stock)
    placed = place(stack, body(new_customer(stack), (sku, quantity), policy=policy))
    assert placed.status_code == 201, placed.text
    order = settled(stack, placed.json()["order_id"], status="released")
    (fo,) = fulfillments(stack, order["order_id"])
    return sku, order["order_id"], fo


def short(stack: Stack, fo: dict[str, Any], sku: str, quantity: int) -> Any:
    return wms_post(
        stack,
        f"/wms/v1/fulfillment-orders/{fo['fulfillment_order_id']}/shortages",
        {"lines": [{"sku": sku, "quantity": quantity}]},
    )


def test_a_short_pick_backorders_the_missing_units_under_partial(
    full_stack: Stack, warehouse: str
) -> None:
    sku, order_id, fo = released(full_stack, warehouse, 5, 5, "partial")
    short(full_stack, fo, sku, 2)
    order = wait_order(full_stack, order_id, lambda o: line_of(o, sku)["backordered"] == 2)
    line = line_of(order, sku)
    assert (line["allocated"], line["released"], line["cancelled"]) == (3, 3, 0)
    assert order["status"] == "partially_allocated"
    assert allocated(full_stack, sku) == 3
    # The 2 missing units are held at the warehouse until counted: nothing to fill from.
    assert wms_stock(full_stack, warehouse, sku)["hold"] == 2
    assert atp(full_stack, sku) == 0
    (fo,) = fulfillments(full_stack, order_id)
    assert fo["lines"][0]["quantity"] == 3
    assert path_of(full_stack, order_id)[-2:] == ["released", "partially_allocated"]


def test_a_short_pick_cancels_the_missing_units_under_reject(
    full_stack: Stack, warehouse: str
) -> None:
    sku, order_id, fo = released(full_stack, warehouse, 5, 5, "reject")
    short(full_stack, fo, sku, 2)
    order = wait_order(full_stack, order_id, lambda o: line_of(o, sku)["cancelled"] == 2)
    line = line_of(order, sku)
    assert (line["allocated"], line["released"], line["backordered"]) == (3, 3, 0)
    assert order["status"] == "released"
    assert allocated(full_stack, sku) == 3
    ship(full_stack, fo, [(sku, 3)])
    order = wait_order(full_stack, order_id, lambda o: o["status"] == "shipped")
    assert line_of(order, sku)["shipped"] == 3


def test_a_delivered_and_invoiced_order_is_completed(full_stack: Stack, warehouse: str) -> None:
    sku, order_id, fo = released(full_stack, warehouse, 5, 2, "reject")
    # Billing stopped: the invoice comes after the delivery, so both steps show.
    with stopped(full_stack, "billing"):
        shipment = ship(full_stack, fo, [(sku, 2)])
        wait_order(full_stack, order_id, lambda o: o["status"] == "shipped")
        deliver(full_stack, shipment["shipment_id"])
        order = wait_order(full_stack, order_id, lambda o: o["status"] == "delivered")
        line = line_of(order, sku)
        assert (line["shipped"], line["delivered"], line["invoiced"]) == (2, 2, 0)
        (recorded,) = order["shipments"]
        assert recorded["delivered_at"] is not None
    order = wait_order(full_stack, order_id, lambda o: o["status"] == "completed", "invoiced")
    assert line_of(order, sku)["invoiced"] == 2
    with full_stack.client("billing", "billing:read") as billing:
        invoices = billing.get("/billing/v1/invoices", params={"order_id": order_id}).json()
    assert [i["shipment_id"] for i in invoices["items"]] == [shipment["shipment_id"]]
    assert path_of(full_stack, order_id) == [
        "pending",
        "accepted",
        "released",
        "shipped",
        "delivered",
        "completed",
    ]


def test_an_invoice_before_the_delivery_completes_it_on_delivery(
    full_stack: Stack, warehouse: str
) -> None:
    sku, order_id, fo = released(full_stack, warehouse, 5, 2, "reject")
    shipment = ship(full_stack, fo, [(sku, 2)])
    wait_order(full_stack, order_id, lambda o: line_of(o, sku)["invoiced"] == 2, "invoiced")
    assert order_of_status(full_stack, order_id) == "shipped"
    deliver(full_stack, shipment["shipment_id"])
    wait_order(full_stack, order_id, lambda o: o["status"] == "completed")
    assert path_of(full_stack, order_id)[-2:] == ["shipped", "completed"]


def order_of_status(stack: Stack, order_id: str) -> str:
    status: str = settled(stack, order_id)["status"]
    return status


def test_a_carrier_delay_shows_its_new_promise_on_the_order(
    full_stack: Stack, warehouse: str
) -> None:
    sku, order_id, fo = released(full_stack, warehouse, 5, 2, "reject")
    shipment = ship(full_stack, fo, [(sku, 2)])
    shipment_id = shipment["shipment_id"]
    for reason, promised in (("weather", "2027-01-04"), ("customs hold", "2027-01-08")):
        wms_post(
            full_stack,
            f"/wms/v1/shipments/{shipment_id}/delays",
            {"reason": reason, "promised_date": promised},
        )
        order = wait_order(
            full_stack,
            order_id,
            lambda o, promised=promised: (
                bool(o["shipments"]) and o["shipments"][0]["promised_date"] == promised
            ),
            "delayed",
        )
        (recorded,) = order["shipments"]
        assert (recorded["delay_reason"], recorded["delivered_at"]) == (reason, None)
    assert order["status"] == "shipped"  # a delay is news, not a move
    deliver(full_stack, shipment_id)
    order = wait_order(full_stack, order_id, lambda o: o["shipments"][0]["delivered_at"])
    assert order["shipments"][0]["promised_date"] == "2027-01-08"
    assert order["status"] in ("delivered", "completed")


def test_a_short_picked_backorder_fills_from_free_stock_at_once(
    full_stack: Stack, warehouse: str
) -> None:
    sku, order_id, fo = released(full_stack, warehouse, 10, 5, "partial")
    short(full_stack, fo, sku, 2)
    # The 2 missing units leave the allocation and are backordered; the warehouse holds
    # 2 of its free units until counted, and 3 more are free: the backorder fills there
    # and goes out on a new fulfillment order.
    order = wait_order(
        full_stack,
        order_id,
        lambda o: len(o["fulfillment_orders"]) == 2 and o["status"] == "released",
        "refilled",
    )
    line = line_of(order, sku)
    assert (line["allocated"], line["released"], line["backordered"]) == (5, 5, 0)
    quantities = sorted(fo["lines"][0]["quantity"] for fo in fulfillments(full_stack, order_id))
    assert quantities == [2, 3]
    assert allocated(full_stack, sku) == 5
    assert wms_stock(full_stack, warehouse, sku)["hold"] == 2
    assert atp(full_stack, sku) == 10 - 5 - 2
    assert path_of(full_stack, order_id)[-3:] == ["partially_allocated", "accepted", "released"]
