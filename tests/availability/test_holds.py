from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from litestar.testing import TestClient

from process_apis.availability.clock import CLOCK, Clock
from process_apis.availability.db import metadata
from process_apis.availability.holds.service import sweep
from shared.db import Database
from shared.settings import Settings
from tests.availability.helpers import count, hold, item, ledger_drift, movements, order


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    monkeypatch.setattr(CLOCK, "offset", timedelta(0))
    return CLOCK


def reasons(client: TestClient[Any], sku: str) -> list[str]:
    return [m["reason"] for m in movements(client, sku)]


def test_a_hold_reserves_units_and_the_ledger_says_so(
    client: TestClient[Any], settings: Settings
) -> None:
    count(client, "A", "WH1", 10)

    response = hold(client, [("A", 4)], hold_id="CART-1", customer_id="C1")

    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["hold_id"], body["status"], body["customer_id"]) == ("CART-1", "active", "C1")
    assert body["lines"] == [
        {
            "sku": "A",
            "quantity": 4,
            "locations": [{"location_id": "WH1", "lot": None, "quantity": 4}],
        }
    ]
    answer = item(client, "A")
    assert answer["available_to_promise"] == 6
    assert answer["locations"][0]["reserved"] == 4
    assert client.get("/availability/v1/holds/CART-1").json() == body
    assert reasons(client, "A") == ["cycle_count", "hold"]
    assert ledger_drift(settings) == {}


def test_an_expired_hold_stops_counting_at_once(
    client: TestClient[Any], settings: Settings, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def asleep(_db: Database, limit: int = 100) -> int:
        return 0

    # The app's sweeper (every 5 s) must not write the expiry during the test: CI once
    # had it tick between the clock's jump and the allocation.
    monkeypatch.setattr("process_apis.availability.holds.sweeper.sweep", asleep)
    count(client, "A", "WH1", 10)
    assert hold(client, [("A", 10)], hold_id="CART-1", ttl_seconds=60).status_code == 201
    assert order(client, "SO-1", [("A", 1)]).status_code == 409

    clock.offset = timedelta(seconds=61)  # no sweeper has run: the hold is only past due

    answer = item(client, "A")
    assert answer["available_to_promise"] == 10
    assert answer["locations"][0]["reserved"] == 0
    assert answer["locations"][0]["lots"][0]["reserved_lapsed"] == 10
    assert client.get("/availability/v1/holds/CART-1").json()["status"] == "expired"
    # The allocation's conditional update counts the lapsed hold as gone too.
    allocated = order(client, "SO-1", [("A", 10)])
    assert allocated.status_code == 201, allocated.text
    assert reasons(client, "A") == ["cycle_count", "hold", "allocation"]

    released = client.post("/availability/v1/holds/CART-1/release")

    assert released.status_code == 200
    assert released.json()["status"] == "expired"
    assert reasons(client, "A") == ["cycle_count", "hold", "allocation", "hold_expired"]
    answer = item(client, "A")
    assert (answer["available_to_promise"], answer["locations"][0]["reserved"]) == (0, 0)
    assert ledger_drift(settings) == {}


def test_the_sweeper_writes_expiries_and_leaves_active_holds(
    client: TestClient[Any], settings: Settings, clock: Clock
) -> None:

    count(client, "A", "WH1", 10)
    hold(client, [("A", 3)], hold_id="SHORT", ttl_seconds=30)
    hold(client, [("A", 2)], hold_id="LONG", ttl_seconds=300)
    clock.offset = timedelta(seconds=31)

    async def run() -> int:
        db = Database(settings.database_url, metadata)
        try:
            return await sweep(db)
        finally:
            await db.dispose()

    assert asyncio.run(run()) == 1
    assert client.get("/availability/v1/holds/SHORT").json()["status"] == "expired"
    assert client.get("/availability/v1/holds/LONG").json()["status"] == "active"
    answer = item(client, "A")
    assert (answer["available_to_promise"], answer["locations"][0]["reserved"]) == (8, 2)
    assert answer["locations"][0]["lots"][0]["reserved_lapsed"] == 0
    assert asyncio.run(run()) == 0
    assert ledger_drift(settings) == {}


def test_converting_a_hold_keeps_the_same_units(
    client: TestClient[Any], settings: Settings
) -> None:
    count(client, "A", "WH1", 3)
    count(client, "A", "WH2", 5)
    assert hold(client, [("A", 6)], hold_id="QUOTE-1", channel="b2b").status_code == 201
    before = item(client, "A")
    held_at = {
        loc["location_id"]: loc["reserved"] for loc in before["locations"] if loc["reserved"]
    }

    converted = client.post(
        "/availability/v1/holds/QUOTE-1/convert",
        json={"order_id": "SO-9"},
        headers={"Idempotency-Key": "convert-1"},
    )

    assert converted.status_code == 201, converted.text
    body = converted.json()
    assert (body["allocation_id"], body["channel"], body["status"]) == ("SO-9", "b2b", "allocated")
    assert {x["location_id"]: x["quantity"] for x in body["lines"][0]["locations"]} == held_at
    after = item(client, "A")
    assert after["available_to_promise"] == before["available_to_promise"] == 2
    assert {
        loc["location_id"]: loc["allocated"] for loc in after["locations"] if loc["allocated"]
    } == held_at
    assert all(loc["reserved"] == 0 for loc in after["locations"])
    hold_now = client.get("/availability/v1/holds/QUOTE-1").json()
    assert (hold_now["status"], hold_now["order_id"]) == ("converted", "SO-9")
    converted_rows = [m for m in movements(client, "A") if m["reason"] == "hold_converted"]
    assert sorted(
        (m["location_id"], m["deltas"]["reserved"], m["deltas"]["allocated"])
        for m in converted_rows
    ) == sorted((loc, -q, q) for loc, q in held_at.items())

    replay = client.post(
        "/availability/v1/holds/QUOTE-1/convert",
        json={"order_id": "SO-9"},
        headers={"Idempotency-Key": "convert-1"},
    )
    assert replay.status_code == 201
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == body
    again = client.post(
        "/availability/v1/holds/QUOTE-1/convert",
        json={"order_id": "SO-10"},
        headers={"Idempotency-Key": "convert-2"},
    )
    assert again.status_code == 409
    assert again.json()["type"] == "/problems/hold-not-active"
    assert client.post("/availability/v1/allocations/SO-9/release").status_code == 200
    assert item(client, "A")["available_to_promise"] == 8
    assert ledger_drift(settings) == {}


def test_an_expired_hold_cannot_be_converted_and_nothing_changes(
    client: TestClient[Any], settings: Settings, clock: Clock
) -> None:
    count(client, "A", "WH1", 5)
    hold(client, [("A", 5)], hold_id="CART-1", ttl_seconds=10)
    clock.offset = timedelta(seconds=10)  # expires_at itself is already past due
    before = movements(client, "A")

    response = client.post(
        "/availability/v1/holds/CART-1/convert",
        json={"order_id": "SO-1"},
        headers={"Idempotency-Key": "convert-late"},
    )

    assert response.status_code == 409
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"] == "/problems/hold-expired"
    assert client.get("/availability/v1/allocations/SO-1").status_code == 404
    # The hold sweeper (every 5 s, in the background) may write the lapsed hold's expiry
    # meanwhile: its own bookkeeping, not the refused conversion's. The conversion
    # moved nothing else.
    assert _besides_expiry(movements(client, "A")) == _besides_expiry(before)


def _besides_expiry(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in found if m["reason"] != "hold_expired"]


@pytest.mark.parametrize(
    "extra",
    [
        {"ttl_seconds": 60, "expires_at": "2099-01-01T00:00:00Z"},
        {"expires_at": "2001-01-01T00:00:00Z"},
        {"expires_at": "2030-01-01T00:00:00"},
        {"ttl_seconds": 0},
        {"ttl_seconds": 60, "bogus": 1},
    ],
)
def test_bad_hold_input_is_a_problem_and_changes_nothing(
    client: TestClient[Any], settings: Settings, extra: dict[str, Any]
) -> None:
    count(client, "A", "WH1", 5)
    before = movements(client, "A")

    response = hold(client, [("A", 1)], hold_id="BAD", **extra)

    assert response.status_code in (400, 422), response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert client.get("/availability/v1/holds/BAD").status_code == 404
    assert movements(client, "A") == before


def test_a_hold_is_all_or_nothing(client: TestClient[Any], settings: Settings) -> None:
    count(client, "A", "WH1", 5)
    count(client, "B", "WH1", 1)

    response = hold(client, [("A", 2), ("B", 2)], hold_id="CART-1")

    assert response.status_code == 409
    assert response.json()["type"] == "/problems/insufficient-stock"
    assert response.json()["errors"] == [{"sku": "B", "requested": 2, "available": 1}]
    assert client.get("/availability/v1/holds/CART-1").status_code == 404
    assert item(client, "A")["available_to_promise"] == 5


def test_holds_replay_on_the_same_key_and_release_once(
    client: TestClient[Any], settings: Settings
) -> None:
    count(client, "A", "WH1", 5)
    expires_at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()

    first = hold(client, [("A", 2)], key="k1", expires_at=expires_at)
    second = hold(client, [("A", 2)], key="k1", expires_at=expires_at)
    other = hold(client, [("A", 3)], key="k1", expires_at=expires_at)

    assert first.status_code == second.status_code == 201
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.json() == first.json()
    assert other.status_code == 422
    assert item(client, "A")["available_to_promise"] == 3
    hold_id = first.json()["hold_id"]
    assert client.delete(f"/availability/v1/holds/{hold_id}").json()["status"] == "released"
    assert client.post(f"/availability/v1/holds/{hold_id}/release").json()["status"] == "released"
    assert reasons(client, "A") == ["cycle_count", "hold", "hold_released"]
    assert item(client, "A")["available_to_promise"] == 5
    assert client.get("/availability/v1/holds/NOPE").status_code == 404
    assert ledger_drift(settings) == {}


def test_a_hold_the_sweeper_has_expired_is_refused_as_expired(
    client: TestClient[Any], settings: Settings, clock: Clock
) -> None:
    """The conversion's answer does not depend on whether the background sweep wrote
    the expiry first."""
    count(client, "A", "WH1", 5)
    hold(client, [("A", 5)], hold_id="CART-2", ttl_seconds=10)
    clock.offset = timedelta(seconds=10)
    swept = client.post("/availability/v1/holds/CART-2/release")  # writes the expiry
    assert swept.status_code == 200 and swept.json()["status"] == "expired"

    response = client.post(
        "/availability/v1/holds/CART-2/convert",
        json={"order_id": "SO-2"},
        headers={"Idempotency-Key": "convert-swept"},
    )

    assert response.status_code == 409
    assert response.json()["type"] == "/problems/hold-expired"
    assert client.get("/availability/v1/allocations/SO-2").status_code == 404
