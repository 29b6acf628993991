from __future__ import annotations

from typing import Any

from litestar.testing import TestClient

from shared.settings import Settings
from tests.availability.helpers import (
    allocate,
    apply_and_wait,
    by_location,
    item,
    ledger_drift,
    movements,
    numbered,
    publish,
    stock,
)
from tests.support.events import receipt_posted, shipment_dispatched
from tests.support.polling import eventually


def test_shipment_lowers_on_hand_and_allocated_of_the_order(
    client: TestClient[Any], settings: Settings
) -> None:
    stock(client, settings, "WH1", A=10)
    assert allocate(client, "SO-1", [("A", 4)]).status_code == 201

    apply_and_wait(client, settings, shipment_dispatched("SO-1", "WH1", [("A", 3, None)]))

    assert by_location(client, "A") == {"WH1": (7, 1)}
    assert item(client, "A")["available_to_promise"] == 6
    allocation = client.get("/availability/v1/allocations/SO-1").json()
    assert allocation["status"] == "partially_shipped"
    assert allocation["lines"][0]["shipped"] == 3
    assert movements(client, "A")[-1]["deltas"] == {"on_hand": -3, "allocated": -3}
    assert movements(client, "A")[-1]["reason"] == "shipment"

    apply_and_wait(client, settings, shipment_dispatched("SO-1", "WH1", [("A", 1, None)]))
    assert by_location(client, "A") == {"WH1": (6, 0)}
    assert client.get("/availability/v1/allocations/SO-1").json()["status"] == "shipped"
    # Nothing is left to release once everything shipped.
    released = client.post("/availability/v1/allocations/SO-1/release")
    assert released.json()["status"] == "shipped"
    assert by_location(client, "A") == {"WH1": (6, 0)}
    assert ledger_drift(settings) == {}


def test_a_shipment_delivered_before_its_receipt_waits_for_it(
    client: TestClient[Any], settings: Settings
) -> None:
    """The WMS received 5 then shipped 3 (stock versions 1 and 2 of WH1); the bus
    delivers the shipment first, and both twice. Positions apply the receipt, then the
    shipment, each once: the shipment is parked until the receipt has applied."""
    receipt, shipment = numbered(
        settings,
        receipt_posted("WH1", [("A", 5, None)]),
        shipment_dispatched("SO-9", "WH1", [("A", 3, None)]),
    )
    assert (receipt.sequence, shipment.sequence) == (1, 2)
    publish(settings, shipment, shipment, receipt, receipt)

    assert eventually(lambda: by_location(client, "A") == {"WH1": (2, 0)}), by_location(client, "A")
    assert [m["deltas"] for m in movements(client, "A")] == [{"on_hand": 5}, {"on_hand": -3}]
    assert ledger_drift(settings) == {}


def test_release_after_a_partial_shipment_releases_only_the_rest(
    client: TestClient[Any], settings: Settings
) -> None:
    stock(client, settings, "WH1", A=10)
    allocate(client, "SO-1", [("A", 5)])
    apply_and_wait(client, settings, shipment_dispatched("SO-1", "WH1", [("A", 2, None)]))

    body = client.post("/availability/v1/allocations/SO-1/release").json()

    assert (body["lines"][0]["shipped"], body["lines"][0]["released"]) == (2, 3)
    assert by_location(client, "A") == {"WH1": (8, 0)}
    assert ledger_drift(settings) == {}


def test_shipment_without_allocation_lowers_on_hand_only_and_never_below_zero(
    client: TestClient[Any], settings: Settings
) -> None:
    stock(client, settings, "WH1", A=5)
    allocate(client, "SO-1", [("A", 2)])

    apply_and_wait(client, settings, shipment_dispatched("SO-OTHER", "WH1", [("A", 2, None)]))
    assert by_location(client, "A") == {"WH1": (3, 2)}

    apply_and_wait(
        client,
        settings,
        shipment_dispatched("SO-OTHER", "WH1", [("A", 9, None)]),
        shipment_dispatched("SO-OTHER", "WH9", [("A", 1, None)]),
    )
    assert by_location(client, "A") == {"WH1": (0, 2)}
    assert ledger_drift(settings) == {}


def test_a_shipment_from_another_lot_keeps_every_position_whole(
    client: TestClient[Any], settings: Settings
) -> None:
    apply_and_wait(client, settings, receipt_posted("WH1", [("A", 5, "L1"), ("A", 5, "L2")]))
    allocate(client, "SO-1", [("A", 5)])
    allocate(client, "SO-2", [("A", 5)])

    # SO-1's claim sits on one lot; the warehouse ships it from the other one.
    claimed = {lot["lot"]: lot["allocated"] for lot in item(client, "A")["locations"][0]["lots"]}
    assert claimed == {"L1": 5, "L2": 5}
    apply_and_wait(client, settings, shipment_dispatched("SO-1", "WH1", [("A", 5, "L2")]))

    lots = item(client, "A")["locations"][0]["lots"]
    assert all(lot["available_to_promise"] >= 0 for lot in lots), lots
    assert by_location(client, "A") == {"WH1": (5, 5)}
    assert allocate(client, "SO-3", [("A", 1)]).status_code == 409
    assert ledger_drift(settings) == {}
