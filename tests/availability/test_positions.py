from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from litestar.testing import TestClient

from shared.settings import Settings
from tests.availability.helpers import apply_and_wait, item, ledger_drift, movements, publish
from tests.support.events import receipt_posted
from tests.support.polling import eventually


def test_receipt_on_the_bus_shows_up_in_availability(
    client: TestClient[Any], settings: Settings
) -> None:
    started = datetime.now(UTC)
    publish(settings, receipt_posted("WH1", [("SKU-1", 10, None), ("SKU-1", 5, "L1")]))

    answer = eventually(lambda: item(client, "SKU-1")["available_to_promise"] == 15)
    assert answer, item(client, "SKU-1")

    body = item(client, "SKU-1")
    assert body["sku"] == "SKU-1"
    as_of = datetime.fromisoformat(body["as_of"].replace("Z", "+00:00"))
    assert as_of.utcoffset() is not None
    assert started <= as_of <= datetime.now(UTC)
    [location] = body["locations"]
    assert location["location_id"] == "WH1"
    assert location["on_hand"] == 15
    assert location["available_to_promise"] == 15
    for bucket in (
        "allocated",
        "reserved",
        "external_committed",
        "quality_control",
        "damaged",
        "hold",
        "safety_stock",
    ):
        assert location[bucket] == 0
    assert [(lot["lot"], lot["on_hand"]) for lot in location["lots"]] == [(None, 10), ("L1", 5)]
    ledger = movements(client, "SKU-1")
    assert [(m["lot"], m["deltas"], m["reason"]) for m in ledger] == [
        (None, {"on_hand": 10}, "receipt"),
        ("L1", {"on_hand": 5}, "receipt"),
    ]
    assert {m["source"] for m in ledger} == {"tally.wms"}
    assert ledger_drift(settings) == {}


def test_a_sku_never_seen_answers_zeros(client: TestClient[Any]) -> None:
    body = item(client, "NEVER-SEEN")

    assert body["available_to_promise"] == 0
    assert body["locations"] == []
    assert body["as_of"]


def test_the_same_receipt_applies_once(client: TestClient[Any], settings: Settings) -> None:
    event = receipt_posted("WH1", [("SKU-1", 10, None)], receipt_id="RCV-1")
    # The same event twice, and the same receipt again under a new event id
    # (a producer that re-emitted it): the receipt still counts once.
    again = receipt_posted("WH1", [("SKU-1", 10, None)], receipt_id="RCV-1")
    publish(settings, event)
    apply_and_wait(client, settings, event, again)

    assert item(client, "SKU-1")["available_to_promise"] == 10
    assert len(movements(client, "SKU-1")) == 1


def test_receipts_add_up_across_locations(client: TestClient[Any], settings: Settings) -> None:
    apply_and_wait(
        client,
        settings,
        receipt_posted("WH1", [("SKU-1", 4, None)]),
        receipt_posted("WH2", [("SKU-1", 6, None), ("SKU-2", 1, None)]),
        receipt_posted("WH1", [("SKU-1", 1, None)]),
    )

    body = item(client, "SKU-1")
    assert body["available_to_promise"] == 11
    assert [(loc["location_id"], loc["on_hand"]) for loc in body["locations"]] == [
        ("WH1", 5),
        ("WH2", 6),
    ]
    batch = client.get("/availability/v1/items", params={"sku": ["SKU-2", "SKU-1", "NONE"]})
    assert batch.status_code == 200
    assert [(i["sku"], i["available_to_promise"]) for i in batch.json()["items"]] == [
        ("SKU-2", 1),
        ("SKU-1", 11),
        ("NONE", 0),
    ]


def test_movements_page_with_a_cursor(client: TestClient[Any], settings: Settings) -> None:
    apply_and_wait(
        client, settings, *(receipt_posted("WH1", [("SKU-1", n, None)]) for n in range(1, 6))
    )

    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/availability/v1/items/SKU-1/movements", params=params).json()
        seen += [m["deltas"]["on_hand"] for m in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [1, 2, 3, 4, 5]
    # A cursor this API did not issue is not an error (house rule): it starts over.
    foreign = client.get("/availability/v1/items/SKU-1/movements", params={"cursor": "zzzz"})
    assert foreign.status_code == 200
    assert len(foreign.json()["items"]) == 5
