"""The item read cache (decision 0039): a read that starts after a write was answered
sees it, through the same app or another one over the same database and data
directory (another worker), also when time passing makes a hold lapse; and a cached
answer is byte for byte the uncached one. On PostgreSQL the cache is switched on
explicitly (``TALLY_AVAILABILITY_READ_CACHE=on``): every app here is on one host."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from litestar.testing import TestClient

from process_apis.availability.clock import CLOCK, Clock
from process_apis.availability.read_cache.wiring import ENV
from shared.settings import Settings
from tests.availability.helpers import count, hold, order
from tests.support.service import service_client
from tests.support.tokens import TestIssuer

SCOPES = "inventory:read inventory:write inventory:admin"


@pytest.fixture(autouse=True)
def _cache_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "on")


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    monkeypatch.setattr(CLOCK, "offset", timedelta(0))
    return CLOCK


@pytest.fixture
def other(settings: Settings, issuer: TestIssuer, client: TestClient[Any]) -> Iterator[Any]:
    """A second app over the same database and data directory: another worker."""
    with service_client("availability", settings, issuer, SCOPES) as second:
        yield second


def v2(client: TestClient[Any], sku: str) -> dict[str, Any]:
    response = client.get(f"/availability/v2/items/{sku}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def atp(client: TestClient[Any], sku: str) -> int:
    """Asked twice, one way and the other: the single read and the batch."""
    one = v2(client, sku)["available_to_promise"]
    batch = client.get(f"/availability/v2/items?sku={sku}&sku=NEVER-SEEN")
    assert batch.status_code == 200, batch.text
    assert batch.json()["items"][0]["available_to_promise"] == one
    return int(one)


def test_a_read_after_each_kind_of_write_sees_it(client: TestClient[Any]) -> None:
    count(client, "A", "WH1", 10)
    assert atp(client, "A") == 10
    assert atp(client, "A") == 10  # now cached

    count(client, "A", "WH1", 12, expected=10)
    assert atp(client, "A") == 12

    assert order(client, "SO-1", [("A", 3)]).status_code == 201
    assert atp(client, "A") == 9
    assert v2(client, "A")["buckets"]["allocated"] == 3

    assert hold(client, [("A", 4)], hold_id="CART-1").status_code == 201
    assert atp(client, "A") == 5
    assert v2(client, "A")["buckets"]["reserved"] == 4

    assert client.post("/availability/v1/holds/CART-1/release").status_code == 200
    assert atp(client, "A") == 9
    assert v2(client, "A")["buckets"]["reserved"] == 0


def test_a_hold_lapsing_shows_without_any_write(client: TestClient[Any], clock: Clock) -> None:
    count(client, "A", "WH1", 10)
    assert hold(client, [("A", 4)], hold_id="CART-1", ttl_seconds=60).status_code == 201
    assert atp(client, "A") == 6
    assert atp(client, "A") == 6  # cached, while the hold is active

    clock.offset = timedelta(seconds=61)  # no sweeper, no write: only time passed

    assert atp(client, "A") == 10
    assert v2(client, "A")["buckets"]["reserved_lapsed"] == 4


def test_a_write_through_one_worker_is_seen_by_the_next_read_through_another(
    client: TestClient[Any], other: TestClient[Any]
) -> None:
    count(client, "A", "WH1", 10)
    assert atp(other, "A") == 10
    assert atp(other, "A") == 10  # cached in the other worker

    assert order(client, "SO-1", [("A", 3)]).status_code == 201
    assert atp(other, "A") == 7

    assert hold(other, [("A", 2)], hold_id="CART-1").status_code == 201
    assert atp(client, "A") == 5  # ... and the other way round
    assert client.post("/availability/v1/holds/CART-1/release").status_code == 200
    assert atp(other, "A") == 7


def test_the_cached_answer_is_the_uncached_one(
    client: TestClient[Any],
    settings: Settings,
    issuer: TestIssuer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    count(client, "A", "WH1", 10)
    count(client, "A", "WH2", 5, lot="L1")
    count(client, "B", "WH1", 7)
    assert hold(client, [("A", 2)], hold_id="CART-1").status_code == 201
    paths = [
        "/availability/v2/items/A",
        "/availability/v2/items?sku=B&sku=A&sku=B",
        "/availability/v1/items/A",
        "/availability/v1/items?sku=A&sku=B",
    ]
    for path in paths:
        client.get(path)  # fills the cache
    cached = [client.get(path) for path in paths]

    monkeypatch.setenv(ENV, "off")
    with service_client("availability", settings, issuer, SCOPES) as uncached:
        fresh = [uncached.get(path) for path in paths]

    for path, hit, miss in zip(paths, cached, fresh, strict=True):
        assert hit.status_code == miss.status_code == 200, path
        assert hit.content == miss.content, path
        assert hit.headers["content-type"] == miss.headers["content-type"], path
