"""Availability v2 beside v1: every bucket per item, location and lot, reserved split
into active and lapsed holds, the per-lot positions paged; v1 keeps its shape and
every v1 answer says it is deprecated and where v2 is (decision 0016)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import pytest
from litestar.testing import TestClient

from process_apis.availability.clock import CLOCK, Clock
from process_apis.availability.db import BUCKETS
from shared.settings import Settings
from shared.versions import find
from tests.availability.helpers import apply_and_wait, hold
from tests.support.events import receipt_posted

ALL_BUCKETS = {*BUCKETS, "reserved_lapsed"}


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    monkeypatch.setattr(CLOCK, "offset", timedelta(0))
    return CLOCK


def _received(client: TestClient[Any], settings: Settings) -> None:
    apply_and_wait(
        client,
        settings,
        receipt_posted("WH1", [("SKU-1", 10, None), ("SKU-1", 5, "L1")]),
        receipt_posted("WH2", [("SKU-1", 7, "L2"), ("SKU-2", 3, "L9")]),
    )


def test_v2_item_has_every_bucket_per_item_location_and_lot(
    client: TestClient[Any], settings: Settings, clock: Clock
) -> None:
    _received(client, settings)
    assert hold(client, [("SKU-1", 4)], hold_id="CART-1", ttl_seconds=60).status_code == 201
    assert hold(client, [("SKU-1", 2)], hold_id="CART-2", ttl_seconds=600).status_code == 201
    clock.offset = timedelta(seconds=61)  # CART-1 lapsed, not swept

    response = client.get("/availability/v2/items/SKU-1")
    assert response.status_code == 200
    body = response.json()
    assert body["sku"] == "SKU-1"
    assert datetime.fromisoformat(body["as_of"]).utcoffset() is not None
    assert set(body["buckets"]) == ALL_BUCKETS
    assert body["buckets"]["on_hand"] == 22
    assert body["buckets"]["reserved"] + body["buckets"]["reserved_lapsed"] == 6
    assert body["buckets"]["reserved_lapsed"] == 4
    assert body["available_to_promise"] == 22 - 2
    shape = {
        loc["location_id"]: [(lot["lot"], lot["buckets"]["on_hand"]) for lot in loc["lots"]]
        for loc in body["locations"]
    }
    assert shape == {"WH1": [(None, 10), ("L1", 5)], "WH2": [("L2", 7)]}
    for location in body["locations"]:
        assert set(location["buckets"]) == ALL_BUCKETS
        for bucket in ALL_BUCKETS:
            assert location["buckets"][bucket] == sum(
                lot["buckets"][bucket] for lot in location["lots"]
            )
        for lot in location["lots"]:
            assert set(lot["buckets"]) == ALL_BUCKETS
            active = lot["buckets"]["reserved"]
            assert lot["available_to_promise"] == lot["buckets"]["on_hand"] - active
    assert "deprecation" not in response.headers and "sunset" not in response.headers

    # v1 keeps its shape: flat buckets, reserved active only, lapsed on the lot.
    v1 = client.get("/availability/v1/items/SKU-1").json()
    assert "buckets" not in v1 and v1["available_to_promise"] == body["available_to_promise"]
    assert v1["locations"][0]["on_hand"] == body["locations"][0]["buckets"]["on_hand"]


def test_v2_batch_answers_each_sku_asked_in_order(
    client: TestClient[Any], settings: Settings
) -> None:
    _received(client, settings)
    response = client.get("/availability/v2/items", params=[("sku", "SKU-2"), ("sku", "NEW")])
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"items"}  # a bounded batch, not a page
    assert [(i["sku"], i["available_to_promise"]) for i in body["items"]] == [
        ("SKU-2", 3),
        ("NEW", 0),
    ]
    assert body["items"][1]["locations"] == []
    assert body["items"][1]["buckets"] == dict.fromkeys(ALL_BUCKETS, 0)


def test_v2_positions_are_paged_per_lot(client: TestClient[Any], settings: Settings) -> None:
    _received(client, settings)
    seen: list[tuple[str, str, str | None, int]] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/availability/v2/positions", params=params)
        assert page.status_code == 200, page.text
        body = page.json()
        pages += 1
        seen += [
            (p["sku"], p["location_id"], p["lot"], p["buckets"]["on_hand"]) for p in body["items"]
        ]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3  # five positions, two a page (apply_and_wait's marker included)
    assert seen == [
        ("MARKER", "MARKER", None, 1),
        ("SKU-1", "WH1", None, 10),
        ("SKU-1", "WH1", "L1", 5),
        ("SKU-1", "WH2", "L2", 7),
        ("SKU-2", "WH2", "L9", 3),
    ]
    only = client.get("/availability/v2/positions", params={"location_id": "WH2", "sku": "SKU-1"})
    assert [(p["lot"], p["available_to_promise"]) for p in only.json()["items"]] == [("L2", 7)]
    bad = client.get("/availability/v2/positions", params={"limit": 0})
    assert bad.status_code == 400
    assert bad.headers["content-type"].startswith("application/problem+json")


def test_v1_items_batch_pages_over_the_skus_asked(
    client: TestClient[Any], settings: Settings
) -> None:
    _received(client, settings)
    skus = [("sku", s) for s in ("SKU-2", "SKU-1", "NEW")]
    everything = client.get("/availability/v1/items", params=skus).json()
    assert [i["sku"] for i in everything["items"]] == ["SKU-2", "SKU-1", "NEW"]
    assert everything["next_cursor"] is None
    first = client.get("/availability/v1/items", params=[*skus, ("limit", "2")]).json()
    assert [i["sku"] for i in first["items"]] == ["SKU-2", "SKU-1"]
    rest = client.get(
        "/availability/v1/items", params=[*skus, ("limit", "2"), ("cursor", first["next_cursor"])]
    ).json()
    assert ([i["sku"] for i in rest["items"]], rest["next_cursor"]) == (["NEW"], None)


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/availability/v1/items/SKU-1", 200),
        ("/availability/v1/items?sku=SKU-1", 200),
        ("/availability/v1/holds/NOPE", 404),
        ("/availability/v1/items/bad%20sku", 400),
    ],
)
def test_every_v1_answer_carries_deprecation_sunset_and_successor(
    client: TestClient[Any], path: str, status: int
) -> None:
    version = find("availability", 1)
    assert version is not None and version.sunset is not None
    response = client.get(path)
    assert response.status_code == status
    deprecated_at = int(response.headers["deprecation"].removeprefix("@"))
    assert datetime.fromtimestamp(deprecated_at, UTC).date() == version.deprecated_on
    sunset = parsedate_to_datetime(response.headers["sunset"])
    assert sunset.date() == version.sunset > date(2026, 11, 23) + timedelta(days=150)
    assert (
        '</contracts/availability/v2/schema>; rel="successor-version"' in response.headers["link"]
    )


def test_v1_refusal_without_a_token_is_stamped_too(client: TestClient[Any]) -> None:
    response = client.get("/availability/v1/items/SKU-1", headers={"Authorization": ""})
    assert response.status_code == 401
    assert "deprecation" in response.headers and "sunset" in response.headers


def test_the_v1_contract_documents_the_headers_and_v2_does_not(client: TestClient[Any]) -> None:
    document = client.get("/schema/openapi.json").json()
    v1 = document["paths"]["/availability/v1/items/{sku}"]["get"]
    assert v1["deprecated"] is True
    assert {"Deprecation", "Sunset", "Link"} <= set(v1["responses"]["200"]["headers"])
    v2 = document["paths"]["/availability/v2/items/{sku}"]["get"]
    assert not v2.get("deprecated")
    assert "Deprecation" not in v2["responses"]["200"].get("headers", {})
