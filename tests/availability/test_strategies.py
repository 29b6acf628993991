from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import TestClient

from process_apis.availability.allocations.planner import Geography, Strategy, plan_allocation
from process_apis.availability.db import BUCKETS
from process_apis.availability.positions.book import PositionBook
from process_apis.availability.positions.ledger import PositionKey
from process_apis.availability.schemas import AllocationLineIn
from shared.settings import Settings
from tests.availability.helpers import count, ledger_drift, order


def book(**on_hand: int) -> PositionBook:
    """Positions of sku A: ``WH1=5`` -> 5 on hand at WH1."""
    values = {
        PositionKey("A", location): dict.fromkeys(BUCKETS, 0) | {"on_hand": quantity}
        for location, quantity in on_hand.items()
    }
    return PositionBook(values)


def where(plan: list[list[tuple[PositionKey, int]]]) -> list[list[tuple[str, int]]]:
    return [[(key.location_id, q) for key, q in takes] for takes in plan]


LINE = [AllocationLineIn(sku="A", quantity=8)]
EAST_WEST = Geography(
    region_of={"WH1": "west", "WH2": "east", "WH3": "central"},
    distances={("east", "central"): 1000, ("west", "central"): 1200, ("east", "west"): 4000},
)


@pytest.mark.parametrize(
    ("strategy", "ship_to", "expected"),
    [
        (Strategy(), None, [[("WH3", 6), ("WH1", 2)]]),
        (Strategy(split=False), None, [[("WH3", 6)]]),
        (Strategy(ranking="priority", priority=("WH1", "WH2")), None, [[("WH1", 5), ("WH2", 3)]]),
        (Strategy(ranking="priority", priority=("WH1",), split=False), None, [[("WH3", 6)]]),
        (Strategy(ranking="nearest"), "east", [[("WH2", 4), ("WH3", 4)]]),
        (Strategy(ranking="nearest"), "west", [[("WH1", 5), ("WH3", 3)]]),
        (Strategy(ranking="nearest"), None, [[("WH3", 6), ("WH1", 2)]]),
        (Strategy(eligible=frozenset({"WH1", "WH2"})), None, [[("WH1", 5), ("WH2", 3)]]),
    ],
)
def test_strategies_rank_and_split_as_configured(
    strategy: Strategy, ship_to: str | None, expected: list[list[tuple[str, int]]]
) -> None:
    positions = book(WH1=5, WH2=4, WH3=6)

    plan = plan_allocation(positions, LINE, strategy, ship_to=ship_to, geography=EAST_WEST)

    assert where(plan) == expected


def test_without_a_split_a_line_nobody_covers_takes_the_fullest_location() -> None:
    plan = plan_allocation(
        book(WH1=5, WH2=7), [AllocationLineIn(sku="A", quantity=9)], Strategy(split=False)
    )

    assert where(plan) == [[("WH2", 7)]]


def test_a_limit_is_shared_by_the_lines_of_one_sku() -> None:
    lines = [AllocationLineIn(sku="A", quantity=4), AllocationLineIn(sku="A", quantity=4)]

    plan = plan_allocation(book(WH1=10), lines, limits={"A": 6})

    assert where(plan) == [[("WH1", 4)], [("WH1", 2)]]


def test_a_channel_strategy_is_stored_and_drives_its_allocations(
    client: TestClient[Any], settings: Settings
) -> None:
    count(client, "A", "WH1", 5)
    count(client, "A", "WH2", 4)
    count(client, "A", "WH3", 6)
    for location, region in (("WH1", "west"), ("WH2", "east"), ("WH3", "central")):
        assert (
            client.put(
                f"/availability/v1/locations/{location}", json={"region": region}
            ).status_code
            == 200
        )
    assert client.put(
        "/availability/v1/regions/east", json={"distances": {"central": 1000, "west": 4000}}
    ).json() == {
        "region": "east",
        "distances": {"central": 1000, "west": 4000},
    }
    default = client.get("/availability/v1/channels/web/strategy").json()
    assert (default["ranking"], default["configured"]) == ("most_stock", False)
    stored = client.put(
        "/availability/v1/channels/web/strategy",
        json={"ranking": "nearest", "split_lines": "across_locations"},
    )
    assert stored.status_code == 200, stored.text
    assert client.get("/availability/v1/channels/web/strategy").json() == stored.json()
    client.put(
        "/availability/v1/channels/edi/strategy",
        json={"ranking": "priority", "priority": ["WH1"], "split_lines": "one_location"},
    )

    near_east = order(client, "SO-1", [("A", 6)], channel="web", ship_to="east").json()
    priority = order(client, "SO-2", [("A", 4)], channel="edi").json()
    unsplit = order(client, "SO-3", [("A", 3)], channel="edi", policy="partial").json()

    assert [(x["location_id"], x["quantity"]) for x in near_east["lines"][0]["locations"]] == [
        ("WH2", 4),
        ("WH3", 2),
    ]
    assert [(x["location_id"], x["quantity"]) for x in priority["lines"][0]["locations"]] == [
        ("WH1", 4)
    ]
    assert [(x["location_id"], x["quantity"]) for x in unsplit["lines"][0]["locations"]] == [
        ("WH3", 3)
    ]
    assert client.delete("/availability/v1/channels/edi/strategy").status_code == 204
    assert client.get("/availability/v1/channels/edi/strategy").json()["configured"] is False
    assert ledger_drift(settings) == {}


def test_a_bad_strategy_is_a_problem_and_stores_nothing(client: TestClient[Any]) -> None:
    for body in (
        {"ranking": "priority"},
        {"ranking": "cheapest"},
        {"split_lines": "no"},
        {"split_lines": False},
        {"priority": [""]},
    ):
        response = client.put("/availability/v1/channels/web/strategy", json=body)
        assert response.status_code in (400, 422), response.text
        assert response.headers["content-type"].startswith("application/problem+json")
    assert client.get("/availability/v1/channels/web/strategy").json()["configured"] is False
