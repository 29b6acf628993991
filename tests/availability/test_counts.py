from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import TestClient

from shared.settings import Settings
from tests.availability.helpers import count, item, ledger_drift, movements, order


def post_count(client: TestClient[Any], sku: str, key: str | None = None, **body: Any) -> Any:
    body.setdefault("reference", "CC-1")
    headers = {"Idempotency-Key": key} if key else {}
    return client.post(f"/availability/v1/positions/{sku}/counts", json=body, headers=headers)


def test_a_count_sets_on_hand_when_the_expectation_holds(
    client: TestClient[Any], settings: Settings
) -> None:
    count(client, "A", "WH1", 10)
    assert order(client, "SO-1", [("A", 4)]).status_code == 201

    response = post_count(
        client, "A", location_id="WH1", expected_on_hand=10, counted_on_hand=7, reference="CC-7"
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["sku"], body["location_id"], body["previous_on_hand"]) == ("A", "WH1", 10)
    assert (body["position"]["on_hand"], body["position"]["available_to_promise"]) == (7, 3)
    last = movements(client, "A")[-1]
    assert (last["reason"], last["reference"], last["deltas"]) == (
        "cycle_count",
        "CC-7",
        {"on_hand": -3},
    )
    assert item(client, "A")["available_to_promise"] == 3
    assert ledger_drift(settings) == {}


def test_a_stale_expectation_is_409_with_the_current_value_and_changes_nothing(
    client: TestClient[Any], settings: Settings
) -> None:
    count(client, "A", "WH1", 10, lot="L1")
    before = movements(client, "A")

    stale = post_count(
        client, "A", location_id="WH1", lot="L1", expected_on_hand=12, counted_on_hand=9
    )
    unseen = post_count(client, "A", location_id="WH9", expected_on_hand=3, counted_on_hand=1)
    same_but_stale = post_count(
        client, "A", location_id="WH1", lot="L1", expected_on_hand=4, counted_on_hand=4
    )

    assert stale.status_code == 409
    assert stale.headers["content-type"].startswith("application/problem+json")
    problem = stale.json()
    assert problem["type"] == "/problems/stale-count"
    assert (problem["current_on_hand"], problem["expected_on_hand"]) == (10, 12)
    assert (unseen.status_code, unseen.json()["current_on_hand"]) == (409, 0)
    assert (same_but_stale.status_code, same_but_stale.json()["current_on_hand"]) == (409, 10)
    assert movements(client, "A") == before
    assert [loc["location_id"] for loc in item(client, "A")["locations"]] == ["WH1"]
    assert item(client, "A")["locations"][0]["on_hand"] == 10


def test_a_count_replays_on_its_key(client: TestClient[Any], settings: Settings) -> None:
    first = post_count(client, "A", "k1", location_id="WH1", expected_on_hand=0, counted_on_hand=5)
    second = post_count(client, "A", "k1", location_id="WH1", expected_on_hand=0, counted_on_hand=5)
    without_key = post_count(client, "A", location_id="WH1", expected_on_hand=0, counted_on_hand=5)

    assert first.status_code == second.status_code == 200
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.json() == first.json()
    assert without_key.status_code == 409  # a new count against a stale expectation
    assert [m["reason"] for m in movements(client, "A")] == ["cycle_count"]
    assert item(client, "A")["available_to_promise"] == 5


@pytest.mark.parametrize(
    "body",
    [
        {"location_id": "WH1", "expected_on_hand": 0, "counted_on_hand": -1},
        {"location_id": "WH1", "expected_on_hand": 0},
        {"location_id": "", "expected_on_hand": 0, "counted_on_hand": 1},
        {"location_id": "WH1", "expected_on_hand": 0, "counted_on_hand": 1, "extra": True},
    ],
)
def test_a_bad_count_is_a_problem_and_changes_nothing(
    client: TestClient[Any], body: dict[str, Any]
) -> None:
    response = post_count(client, "A", **body)

    assert response.status_code in (400, 422), response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert item(client, "A")["locations"] == []
