from __future__ import annotations

from typing import Any

from litestar.testing import TestClient

from shared.events.catalog import InventoryAllocated, InventoryReleased
from shared.events.envelope import Event
from shared.settings import Settings
from tests.availability.helpers import (
    allocate,
    by_location,
    item,
    ledger_drift,
    movements,
    outbox_count,
    stock,
)
from tests.support.events import bus_events
from tests.support.polling import eventually


def allocation_events(settings: Settings) -> list[Event]:
    """The allocations' events on the bus (inventory.replenished left out)."""
    published = bus_events(settings, "tally.availability")
    return [e for e in published if e.type != "inventory.replenished"]


def test_allocation_takes_the_location_with_most_atp_first_and_splits(
    client: TestClient[Any], settings: Settings
) -> None:
    stock(client, settings, "WH1", A=6, B=3)
    stock(client, settings, "WH2", A=10)

    response = allocate(client, "SO-1", [("A", 12), ("B", 2)])

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["allocation_id"] == "SO-1"
    assert body["order_id"] == "SO-1"
    assert body["channel"] == "b2b"
    assert body["policy"] == "reject"
    assert body["status"] == "allocated"
    line_a, line_b = body["lines"]
    assert (line_a["sku"], line_a["quantity"], line_a["allocated"], line_a["backordered"]) == (
        "A",
        12,
        12,
        0,
    )
    assert [(x["location_id"], x["quantity"]) for x in line_a["locations"]] == [
        ("WH1", 2),
        ("WH2", 10),
    ]
    assert [(x["location_id"], x["quantity"]) for x in line_b["locations"]] == [("WH1", 2)]
    assert by_location(client, "A") == {"WH1": (6, 2), "WH2": (10, 10)}
    assert item(client, "A")["available_to_promise"] == 4
    assert item(client, "B")["available_to_promise"] == 1
    assert client.get("/availability/v1/allocations/SO-1").json() == body
    assert ledger_drift(settings) == {}

    published = eventually(lambda: allocation_events(settings))
    assert [e.type for e in published] == ["inventory.allocated"]
    assert published[0].subject == "SO-1"
    assert published[0].sequence == 1
    payload = published[0].payload(InventoryAllocated)
    assert sorted((x.sku, x.location_id, x.quantity) for x in payload.lines) == [
        ("A", "WH1", 2),
        ("A", "WH2", 10),
        ("B", "WH1", 2),
    ]


def test_reject_policy_refuses_and_writes_nothing(
    client: TestClient[Any], settings: Settings
) -> None:
    stock(client, settings, "WH1", A=5, B=1)
    ledger_before = movements(client, "A") + movements(client, "B")
    outbox_before = outbox_count(settings)

    response = allocate(client, "SO-1", [("A", 3), ("B", 2)])

    assert response.status_code == 409
    problem = response.json()
    assert problem["type"] == "/problems/insufficient-stock"
    assert problem["errors"] == [{"sku": "B", "requested": 2, "available": 1}]
    assert client.get("/availability/v1/allocations/SO-1").status_code == 404
    assert by_location(client, "A") == {"WH1": (5, 0)}
    assert by_location(client, "B") == {"WH1": (1, 0)}
    assert movements(client, "A") + movements(client, "B") == ledger_before
    assert outbox_count(settings) == outbox_before
    # Nothing was remembered: the order can be allocated once stock is there.
    stock(client, settings, "WH1", B=1)
    assert allocate(client, "SO-1", [("A", 3), ("B", 2)]).status_code == 201


def test_ship_complete_backorders_everything_when_a_line_is_short(
    client: TestClient[Any], settings: Settings
) -> None:
    stock(client, settings, "WH1", A=5, B=1)

    response = allocate(client, "SO-1", [("A", 3), ("B", 2)], policy="ship_complete")

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "backordered"
    assert [(x["allocated"], x["backordered"], x["locations"]) for x in body["lines"]] == [
        (0, 3, []),
        (0, 2, []),
    ]
    assert by_location(client, "A") == {"WH1": (5, 0)}
    assert by_location(client, "B") == {"WH1": (1, 0)}

    complete = allocate(client, "SO-2", [("A", 3), ("B", 1)], policy="ship_complete")
    assert complete.status_code == 201
    assert complete.json()["status"] == "allocated"
    assert by_location(client, "A") == {"WH1": (5, 3)}


def test_partial_allocates_what_there_is_and_backorders_the_rest(
    client: TestClient[Any], settings: Settings
) -> None:
    stock(client, settings, "WH1", A=5, B=1)
    stock(client, settings, "WH2", B=1)

    response = allocate(client, "SO-1", [("A", 3), ("B", 4), ("C", 1)], policy="partial")

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "partially_allocated"
    assert [(x["sku"], x["allocated"], x["backordered"]) for x in body["lines"]] == [
        ("A", 3, 0),
        ("B", 2, 2),
        ("C", 0, 1),
    ]
    assert item(client, "B")["available_to_promise"] == 0
    assert ledger_drift(settings) == {}


def test_two_lines_of_one_sku_share_the_stock(client: TestClient[Any], settings: Settings) -> None:
    stock(client, settings, "WH1", A=5)

    response = allocate(client, "SO-1", [("A", 3), ("A", 3)], policy="partial")

    assert response.status_code == 201
    assert [(x["allocated"], x["backordered"]) for x in response.json()["lines"]] == [
        (3, 0),
        (2, 1),
    ]
    assert by_location(client, "A") == {"WH1": (5, 5)}


def test_replay_duplicate_order_and_key_reuse(client: TestClient[Any], settings: Settings) -> None:
    stock(client, settings, "WH1", A=10)
    outbox_before = outbox_count(settings)
    first = allocate(client, "SO-1", [("A", 2)], key="k1")
    again = allocate(client, "SO-1", [("A", 2)], key="k1")
    other_key = allocate(client, "SO-1", [("A", 2)], key="k2")
    other_body = allocate(client, "SO-1", [("A", 3)], key="k1")

    assert first.status_code == again.status_code == 201
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json() == first.json()
    assert other_key.status_code == 409
    assert other_key.json()["type"] == "/problems/duplicate-allocation"
    assert other_body.status_code == 422
    assert by_location(client, "A") == {"WH1": (10, 2)}
    assert outbox_count(settings) == outbox_before + 1


def test_release_gives_back_what_is_not_shipped(
    client: TestClient[Any], settings: Settings
) -> None:
    stock(client, settings, "WH1", A=4)
    stock(client, settings, "WH2", A=3)
    assert allocate(client, "SO-1", [("A", 6)]).status_code == 201
    assert item(client, "A")["available_to_promise"] == 1

    released = client.post("/availability/v1/allocations/SO-1/release")

    assert released.status_code == 200, released.text
    body = released.json()
    assert body["status"] == "released"
    assert body["version"] == 2
    assert body["lines"][0]["released"] == 6
    assert item(client, "A")["available_to_promise"] == 7
    assert by_location(client, "A") == {"WH1": (4, 0), "WH2": (3, 0)}
    assert ledger_drift(settings) == {}

    twice = client.post("/availability/v1/allocations/SO-1/release")
    assert twice.status_code == 200
    assert twice.json() == body
    assert client.post("/availability/v1/allocations/NOPE/release").status_code == 404

    published = eventually(lambda: len(allocation_events(settings)) == 2)
    assert published
    event = allocation_events(settings)[1]
    assert (event.type, event.subject, event.sequence) == ("inventory.released", "SO-1", 2)
    payload = event.payload(InventoryReleased)
    assert sorted((x.location_id, x.quantity) for x in payload.lines) == [("WH1", 4), ("WH2", 2)]


def test_allocation_input_is_validated(client: TestClient[Any]) -> None:
    for body in (
        {"order_id": "SO-1", "channel": "b2b", "lines": []},
        {"order_id": "SO-1", "channel": "b2b", "lines": [{"sku": "A", "quantity": 0}]},
        {"order_id": "SO-1", "channel": "b2b", "lines": [{"sku": "A", "quantity": 1}], "x": 1},
        {
            "order_id": "SO-1",
            "channel": "b2b",
            "lines": [{"sku": "A", "quantity": 1}],
            "policy": "some",
        },
    ):
        response = client.post(
            "/availability/v1/allocations", json=body, headers={"Idempotency-Key": "k"}
        )
        assert response.status_code == 400, body
    missing_key = client.post(
        "/availability/v1/allocations",
        json={"order_id": "SO-1", "channel": "b2b", "lines": [{"sku": "A", "quantity": 1}]},
    )
    assert missing_key.status_code == 400
