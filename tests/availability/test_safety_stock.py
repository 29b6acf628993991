"""Safety stock per item and location (decision 0024): set with an admin PUT, written
to the ledger, deducted from ATP and channel availability in v1 and v2, and out of
reach of allocations and holds, whatever the lots and whatever the allocation path."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import TestClient

from process_apis.availability.positions.safety_stock import SafetyStockIn, set_safety_stock
from shared.db import Database
from shared.settings import Settings
from tests.availability.helpers import allocate, hold, item, ledger_drift, movements, order
from tests.availability.test_plan_ahead import allocate_racing
from tests.support.tokens import TestIssuer

SAFETY = "/availability/v1/items/{sku}/safety-stock"


@pytest.fixture
def admin(issuer: TestIssuer) -> dict[str, str]:
    token = issuer.token("inventory:read inventory:admin", audience="availability")
    return {"Authorization": f"Bearer {token}"}


def put_safety(
    client: TestClient[Any], admin: dict[str, str], sku: str, quantity: Any, **body: Any
) -> Any:
    body = {"location_id": "WH1", "safety_stock": quantity, "reference": "PLAN-1", **body}
    return client.put(SAFETY.format(sku=sku), json=body, headers=admin)


def counted(
    client: TestClient[Any], admin: dict[str, str], sku: str, quantity: int, lot: str | None = None
) -> None:
    """Stock by a cycle count (an admin write too)."""
    body: dict[str, Any] = {
        "location_id": "WH1",
        "expected_on_hand": 0,
        "counted_on_hand": quantity,
        "reference": f"CC-{sku}",
    }
    if lot:
        body["lot"] = lot
    response = client.post(f"/availability/v1/positions/{sku}/counts", json=body, headers=admin)
    assert response.status_code == 200, response.text


def test_safety_stock_lowers_atp_in_v1_and_v2_and_the_channel_view(
    client: TestClient[Any], settings: Settings, admin: dict[str, str]
) -> None:
    counted(client, admin, "A", 10)

    response = put_safety(client, admin, "A", 4, reference="PLAN-7", source="planning")

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["sku"], body["location_id"], body["safety_stock"]) == ("A", "WH1", 4)
    assert (body["location"]["safety_stock"], body["location"]["available_to_promise"]) == (4, 6)
    v1 = item(client, "A")
    assert v1["available_to_promise"] == 6
    (location,) = v1["locations"]
    assert (location["safety_stock"], location["available_to_promise"]) == (4, 6)
    assert location["lots"][0]["safety_stock"] == 4
    channel = client.get("/availability/v1/items/A", params={"channel": "b2b"}).json()
    assert channel["channel_available"] == 6
    v2 = client.get("/availability/v2/items/A").json()
    assert (v2["available_to_promise"], v2["buckets"]["safety_stock"]) == (6, 4)
    assert v2["locations"][0]["buckets"]["safety_stock"] == 4
    (position,) = client.get("/availability/v2/positions", params={"sku": "A"}).json()["items"]
    assert (position["buckets"]["safety_stock"], position["available_to_promise"]) == (4, 6)
    last = movements(client, "A")[-1]
    assert (last["reason"], last["source"], last["reference"], last["deltas"]) == (
        "safety_stock_set",
        "planning",
        "PLAN-7",
        {"safety_stock": 4},
    )
    assert ledger_drift(settings) == {}


def test_allocations_and_holds_cannot_take_safety_stock(
    client: TestClient[Any], settings: Settings, admin: dict[str, str]
) -> None:
    counted(client, admin, "A", 10)
    assert put_safety(client, admin, "A", 4).status_code == 200

    refused = allocate(client, "SO-1", [("A", 7)])
    held = hold(client, [("A", 7)])
    partial = allocate(client, "SO-2", [("A", 9)], policy="partial")

    assert refused.status_code == 409
    assert refused.json()["type"] == "/problems/insufficient-stock"
    assert held.status_code == 409
    assert partial.status_code == 201
    assert partial.json()["lines"][0]["allocated"] == 6
    assert item(client, "A")["available_to_promise"] == 0
    assert allocate(client, "SO-3", [("A", 1)]).status_code == 409
    assert ledger_drift(settings) == {}


def test_safety_stock_holds_back_lotted_stock_of_its_location(
    client: TestClient[Any], settings: Settings, admin: dict[str, str]
) -> None:
    """The stock is in lots; the safety stock sits on the location's lot-less position
    and still holds back units of the lots."""
    counted(client, admin, "A", 6, lot="L1")
    counted(client, admin, "A", 4, lot="L2")
    assert put_safety(client, admin, "A", 3).status_code == 200
    assert item(client, "A")["available_to_promise"] == 7

    response = order(client, "SO-1", [("A", 10)], policy="partial")
    held = hold(client, [("A", 1)])

    assert response.status_code == 201
    assert response.json()["lines"][0]["allocated"] == 7
    assert held.status_code == 409
    (location,) = item(client, "A")["locations"]
    assert (location["on_hand"], location["allocated"], location["safety_stock"]) == (10, 7, 3)
    assert location["available_to_promise"] == 0
    assert ledger_drift(settings) == {}


def test_safety_stock_set_between_the_plan_and_the_turn_is_not_allocated(
    client: TestClient[Any], settings: Settings
) -> None:
    """A batch planned ahead on 10 units (decision 0020); safety stock of 8 is committed
    before its turn: the position's guarded UPDATE refuses the plan and the order gets
    the 2 units left, planned again on the locked positions."""

    async def safety_stock_elsewhere(db: Database) -> None:
        async with db.transaction() as tx:
            await set_safety_stock(
                tx, "A", SafetyStockIn(location_id="WH1", safety_stock=8, reference="PLAN-8")
            )

    response = allocate_racing(client, settings, safety_stock_elsewhere, 5)

    assert response.status_code == 201
    line = response.json()["lines"][0]
    assert (line["allocated"], line["backordered"]) == (2, 3)
    (location,) = item(client, "A")["locations"]
    assert (location["on_hand"], location["allocated"], location["safety_stock"]) == (10, 2, 8)
    assert location["available_to_promise"] == 0
    assert ledger_drift(settings) == {}


def test_the_same_put_twice_writes_one_ledger_row_and_answers_the_same(
    client: TestClient[Any], settings: Settings, admin: dict[str, str]
) -> None:
    counted(client, admin, "A", 10)

    first = put_safety(client, admin, "A", 5, expected_safety_stock=0)
    second = put_safety(client, admin, "A", 5, expected_safety_stock=0)

    assert first.status_code == second.status_code == 200
    assert second.json() == first.json()
    assert [m["reason"] for m in movements(client, "A")] == ["cycle_count", "safety_stock_set"]

    lowered = put_safety(client, admin, "A", 2, expected_safety_stock=5)

    assert lowered.status_code == 200
    assert lowered.json()["location"]["available_to_promise"] == 8
    assert movements(client, "A")[-1]["deltas"] == {"safety_stock": -3}
    assert ledger_drift(settings) == {}


def test_a_stale_expectation_is_409_and_changes_nothing(
    client: TestClient[Any], settings: Settings, admin: dict[str, str]
) -> None:
    counted(client, admin, "A", 10)
    assert put_safety(client, admin, "A", 5).status_code == 200
    before = movements(client, "A")

    stale = put_safety(client, admin, "A", 7, expected_safety_stock=3)
    unseen = put_safety(client, admin, "A", 7, location_id="WH9", expected_safety_stock=2)

    assert stale.status_code == 409
    assert stale.headers["content-type"].startswith("application/problem+json")
    problem = stale.json()
    assert problem["type"] == "/problems/stale-safety-stock"
    assert (problem["current_safety_stock"], problem["expected_safety_stock"]) == (5, 3)
    assert (unseen.status_code, unseen.json()["current_safety_stock"]) == (409, 0)
    assert movements(client, "A") == before
    (location,) = item(client, "A")["locations"]
    assert (location["location_id"], location["safety_stock"]) == ("WH1", 5)


def test_safety_stock_at_a_location_without_stock_creates_its_position(
    client: TestClient[Any], settings: Settings, admin: dict[str, str]
) -> None:
    response = put_safety(client, admin, "NEW", 3, location_id="WH2")

    assert response.status_code == 200, response.text
    assert response.json()["location"]["available_to_promise"] == -3
    body = item(client, "NEW")
    assert body["available_to_promise"] == 0  # a short location lends nothing, owes nothing
    assert [(loc["location_id"], loc["safety_stock"]) for loc in body["locations"]] == [("WH2", 3)]
    assert ledger_drift(settings) == {}

    nothing = put_safety(client, admin, "NONE", 0, location_id="WH2")
    assert nothing.status_code == 200
    assert (nothing.json()["safety_stock"], nothing.json()["location"]["lots"]) == (0, [])
    assert item(client, "NONE")["locations"] == []


@pytest.mark.parametrize(
    "body",
    [
        {"location_id": "WH1", "safety_stock": -1, "reference": "R"},
        {"location_id": "WH1", "safety_stock": 1_000_000_001, "reference": "R"},
        {"location_id": "WH1", "safety_stock": 2**63, "reference": "R"},
        {"location_id": "WH1", "safety_stock": 1.5, "reference": "R"},
        {"location_id": "WH1", "safety_stock": 5},
        {"location_id": "", "safety_stock": 5, "reference": "R"},
        {"location_id": "WH1", "safety_stock": 5, "reference": ""},
        {"location_id": "WH1", "safety_stock": 5, "reference": "R", "expected_safety_stock": -1},
        {"location_id": "WH1", "safety_stock": 5, "reference": "R", "extra": True},
    ],
)
def test_a_bad_body_is_a_problem_and_writes_nothing(
    client: TestClient[Any], admin: dict[str, str], body: dict[str, Any]
) -> None:
    response = client.put(SAFETY.format(sku="A"), json=body, headers=admin)

    assert response.status_code in (400, 422), response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert item(client, "A")["locations"] == []
    assert movements(client, "A") == []


def test_without_the_admin_scope_it_is_403_and_writes_nothing(
    client: TestClient[Any], issuer: TestIssuer, admin: dict[str, str]
) -> None:
    counted(client, admin, "A", 10)
    body = {"location_id": "WH1", "safety_stock": 4, "reference": "R"}
    writer = issuer.token("inventory:read inventory:write", audience="availability")
    bound = issuer.token(
        "inventory:read inventory:write inventory:admin",
        audience="availability",
        customer_id="CUST-1",
    )

    for token in (writer, bound):
        response = client.put(
            SAFETY.format(sku="A"), json=body, headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 403, response.text
        assert response.json()["type"] == "/problems/insufficient-scope"

    assert [m["reason"] for m in movements(client, "A")] == ["cycle_count"]
    assert item(client, "A")["available_to_promise"] == 10
