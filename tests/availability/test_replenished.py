"""``inventory.replenished`` (decision 0030): one event, in the same transaction, for
every transaction that raised available-to-promise of some sku; none for one that
only lowered it (an allocation, a hold) or moved units without freeing any (a
shipment, a hold converted)."""

from __future__ import annotations

from typing import Any

from litestar.testing import TestClient

from shared.events.catalog import (
    AdjustedLine,
    DispositionedLine,
    InventoryAdjusted,
    InventoryReplenished,
    Line,
    ReturnDispositioned,
    ReturnReceived,
    StockStatus,
)
from shared.events.envelope import Event
from shared.settings import Settings
from tests.availability.helpers import apply_and_wait, hold, order, stock
from tests.support.events import bus_events, receipt_posted, shipment_dispatched, wms_event
from tests.support.polling import eventually

ALLOCATIONS = "/availability/v1/allocations"


def replenished(settings: Settings) -> list[tuple[list[str], str]]:
    """(skus, reason) of every inventory.replenished on the bus, MARKER receipts out."""
    found = []
    for event in bus_events(settings, "tally.availability"):
        if event.type == "inventory.replenished":
            payload = event.payload(InventoryReplenished)
            if payload.skus != ["MARKER"]:
                found.append((payload.skus, payload.reason))
    return found


def published(settings: Settings, type_: str) -> list[Event]:
    return [e for e in bus_events(settings, "tally.availability") if e.type == type_]


def settled(settings: Settings, type_: str, count: int) -> list[tuple[list[str], str]]:
    """The replenished events once the ``count``-th event of ``type_`` is on the bus:
    everything the service emitted before it is there too (one relay, in order)."""
    assert eventually(lambda: len(published(settings, type_)) >= count), type_
    return replenished(settings)


def adjusted(sequence: int, reason: str, *lines: tuple[str, int, StockStatus]) -> Event:
    """An adjustment at WH1, numbered as the WMS numbers WH1's stock changes."""
    return wms_event(
        "inventory.adjusted",
        "WH1",
        InventoryAdjusted(
            adjustment_id=f"ADJ-{sequence}",
            warehouse_id="WH1",
            reason=reason,
            lines=[
                AdjustedLine(sku=sku, quantity_delta=delta, status=status)
                for sku, delta, status in lines
            ],
        ),
        sequence=sequence,
    )


def test_a_receipt_and_a_release_replenish_an_allocation_does_not(
    client: TestClient[Any], settings: Settings
) -> None:
    stock(client, settings, "WH1", B=2, A=5)

    first = eventually(lambda: replenished(settings))
    assert first == [(["A", "B"], "receipt")]
    event = next(e for e in published(settings, "inventory.replenished"))
    assert (event.subject, event.sequence, event.source) == (
        "replenished:A",
        1,
        "tally.availability",
    )

    assert order(client, "SO-1", [("A", 3), ("B", 1)]).status_code == 201
    hold_made = hold(client, [("A", 1)])
    assert hold_made.status_code == 201
    converted = client.post(
        f"/availability/v1/holds/{hold_made.json()['hold_id']}/convert",
        json={"order_id": "SO-2"},
        headers={"Idempotency-Key": "convert-1"},
    )
    assert converted.status_code == 201, converted.text
    assert settled(settings, "inventory.allocated", 2) == first

    client.post(f"{ALLOCATIONS}/SO-1/release")
    assert eventually(lambda: len(replenished(settings)) >= 2)
    assert replenished(settings) == [*first, (["A", "B"], "allocation_released")]

    line = {"sku": "A", "release": 1}
    response = client.post(
        f"{ALLOCATIONS}/SO-2/line-releases",
        json={"reason": "short_closed", "lines": [line]},
        headers={"Idempotency-Key": "lr-1"},
    )
    assert response.status_code == 200, response.text
    assert eventually(lambda: len(replenished(settings)) >= 3)
    assert replenished(settings)[2:] == [(["A"], "short_closed")]


def test_a_shipment_replenishes_nothing_a_hold_released_does(
    client: TestClient[Any], settings: Settings
) -> None:
    stock(client, settings, "WH1", A=5)
    assert order(client, "SO-1", [("A", 2)]).status_code == 201
    apply_and_wait(client, settings, shipment_dispatched("SO-1", "WH1", [("A", 2, None)]))
    cart = hold(client, [("A", 1)]).json()
    assert settled(settings, "inventory.allocated", 1) == [(["A"], "receipt")]

    assert client.post(f"/availability/v1/holds/{cart['hold_id']}/release").status_code == 200
    assert eventually(lambda: len(replenished(settings)) >= 2)
    assert replenished(settings) == [(["A"], "receipt"), (["A"], "hold_released")]


def test_adjustments_restocks_and_safety_stock_replenish_only_when_atp_rises(
    client: TestClient[Any], settings: Settings
) -> None:
    # Down, into quality control, then released from it: only the last raises ATP.
    apply_and_wait(
        client,
        settings,
        receipt_posted("WH1", [("A", 5, None)], sequence=1),
        adjusted(2, "lost", ("A", -1, "available")),
        adjusted(3, "found", ("A", 2, "quality_control")),
        adjusted(4, "quality_status", ("A", -2, "quality_control"), ("A", 2, "available")),
        adjusted(5, "found", ("A", 1, "available")),
    )
    assert eventually(lambda: len(replenished(settings)) >= 3)
    assert replenished(settings) == [
        (["A"], "receipt"),
        (["A"], "quality_status"),
        (["A"], "found"),
    ]

    safety = "/availability/v1/items/A/safety-stock"
    raised = client.put(safety, json={"location_id": "WH1", "safety_stock": 3, "reference": "P"})
    assert raised.status_code == 200, raised.text
    stock(client, settings, "WH2", B=1)
    assert eventually(lambda: len(replenished(settings)) >= 4)
    assert replenished(settings)[3:] == [(["B"], "receipt")]  # raising it freed nothing
    lowered = client.put(safety, json={"location_id": "WH1", "safety_stock": 1, "reference": "P"})
    assert lowered.status_code == 200, lowered.text
    assert eventually(lambda: len(replenished(settings)) >= 5)
    assert replenished(settings)[4:] == [(["A"], "safety_stock_set")]


def test_a_return_replenishes_once_restocked_not_when_received_or_scrapped(
    client: TestClient[Any], settings: Settings
) -> None:
    received = ReturnReceived(
        return_id="RMA-1", order_id="SO-1", warehouse_id="WH1", lines=[Line("A", 3), Line("B", 1)]
    )
    done = ReturnDispositioned(
        return_id="RMA-1",
        order_id="SO-1",
        warehouse_id="WH1",
        lines=[
            DispositionedLine("A", 2, "restock"),
            DispositionedLine("A", 1, "scrap"),
            DispositionedLine("B", 1, "damaged"),
        ],
    )
    apply_and_wait(
        client,
        settings,
        wms_event("return.received", "WH1", received, sequence=1),
        wms_event("return.dispositioned", "WH1", done, sequence=2),
    )

    assert eventually(lambda: replenished(settings))
    assert replenished(settings) == [(["A"], "return_restock")]
