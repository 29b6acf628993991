"""The order service's runs of warehouse and billing facts apply sorted by the order
they concern (``order_of``), the order its other multi-order writers lock in."""

from __future__ import annotations

from process_apis.order_to_ship.orders.events import order_of
from shared.events.catalog import InventoryReplenished, Line, ShipmentDispatched
from shared.events.envelope import new_event


def test_a_fact_about_an_order_sorts_by_that_order_and_one_without_first() -> None:
    shipped = new_event(
        source="tally.wms",
        type_="shipment.dispatched",
        subject="SHP-1",
        sequence=1,
        payload=ShipmentDispatched(
            shipment_id="SHP-1",
            fulfillment_order_id="FO-1",
            order_id="ORD-7",
            warehouse_id="WH-1",
            carrier="UPS",
            tracking_number="1Z",
            lines=[Line("A", 1)],
        ),
    )
    replenished = new_event(
        source="tally.availability",
        type_="inventory.replenished",
        subject="A",
        sequence=1,
        payload=InventoryReplenished(skus=["A"], reason="receipt"),
    )
    assert order_of(shipped) == "ORD-7"
    assert order_of(replenished) == ""
    assert sorted([shipped, replenished], key=order_of) == [replenished, shipped]
