"""200 concurrent clients across four channels against a real availability process
(``tally serve availability``), on SQLite and on a real PostgreSQL: a sku with 1,000
sellable units over two warehouses ends with exactly 1,000 allocated, never more, and
the ledger rebuilds the positions."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from tests.availability.helpers import ledger_drift
from tests.support.availability import AvailabilityProcess
from tests.support.tokens import TestIssuer

pytestmark = pytest.mark.slow  # starts services as processes or a stack on real ports

CLIENTS = 200
CHANNELS = ("b2b", "ecommerce", "marketplace", "edi")
POLICIES = ("reject", "ship_complete", "partial")
SKU = "HOT-1"
STOCK = {"WH-EAST": 600, "WH-WEST": 400}
MAX_ORDERS_PER_CLIENT = 60  # bounded: 200 x 60 x 1 unit would still be far past 1,000


class Placed(msgspec.Struct):
    order_id: str
    channel: str
    status_code: int
    body: dict[str, Any]


def allocated_of(body: dict[str, Any]) -> int:
    return sum(int(line["allocated"]) for line in body["lines"])


async def one_client(n: int, url: str, token: str, placed: list[Placed]) -> None:
    """Orders of 1-4 units under a rotating policy until one is not served in full;
    then orders of one unit (partial) until one gets nothing: at that moment ATP was 0,
    and ATP never rises again, so once every client stops the stock is all allocated."""
    channel = CHANNELS[n % len(CHANNELS)]
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120.0) as http:
        last_unit = False
        for k in range(MAX_ORDERS_PER_CLIENT):
            order_id = f"SO-{n}-{k}"
            quantity = 1 if last_unit else 1 + (n + k) % 4
            policy = "partial" if last_unit else POLICIES[(n + k) % len(POLICIES)]
            body = {
                "order_id": order_id,
                "channel": channel,
                "policy": policy,
                "lines": [{"sku": SKU, "quantity": quantity}],
            }
            key = {"Idempotency-Key": f"key-{order_id}"}
            response = await http.post("/availability/v1/allocations", json=body, headers=key)
            placed.append(Placed(order_id, channel, response.status_code, response.json()))
            if k == 0 and n % 20 == 0 and response.status_code == 201:
                # A retry replays the stored answer; the key with another payload is refused.
                again = await http.post("/availability/v1/allocations", json=body, headers=key)
                assert again.status_code == 201
                assert again.headers["Idempotent-Replayed"] == "true"
                assert again.json() == response.json()
                other = {**body, "order_id": f"{order_id}-other"}
                refused = await http.post("/availability/v1/allocations", json=other, headers=key)
                assert refused.status_code == 422
                assert refused.json()["type"] == "/problems/idempotency-key-reused"
            served = response.status_code == 201 and allocated_of(response.json()) == quantity
            if last_unit and not served:
                return
            if not served:
                last_unit = True
    raise AssertionError(f"client {n} still got stock after {MAX_ORDERS_PER_CLIENT} orders")


async def stampede(url: str, token: str) -> list[Placed]:
    placed: list[Placed] = []
    await asyncio.gather(*(one_client(n, url, token, placed) for n in range(CLIENTS)))
    return placed


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str | None:
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        return url
    return None  # the embedded default: a SQLite file in the data directory


def test_two_hundred_clients_allocate_exactly_the_stock(
    tmp_path: Path, issuer: TestIssuer, database_url: str | None
) -> None:
    with AvailabilityProcess(tmp_path, issuer, database_url=database_url) as service:
        for warehouse, quantity in STOCK.items():
            service.receive(warehouse, SKU, quantity)
        service.wait_for_atp(SKU, sum(STOCK.values()))

        placed = asyncio.run(stampede(service.url, service.token()))
        check_exactly_the_stock_allocated(service, placed)


def check_exactly_the_stock_allocated(service: AvailabilityProcess, placed: list[Placed]) -> None:
    """Every order answered once; exactly the 1,000 units allocated, over every channel;
    answers as stored; positions as the ledger rebuilds them."""
    statuses = Counter(p.status_code for p in placed)
    assert set(statuses) <= {201, 409}, statuses
    refusals = {p.body["type"] for p in placed if p.status_code == 409}
    assert refusals <= {"/problems/insufficient-stock"}, refusals
    granted = [p for p in placed if p.status_code == 201]
    assert len({p.order_id for p in placed}) == len(placed)  # one answer per order
    assert sum(allocated_of(p.body) for p in granted) == 1000
    assert {p.channel for p in granted if allocated_of(p.body)} == set(CHANNELS)

    with service.client() as http:
        item = http.get(f"/availability/v1/items/{SKU}").json()
        # Each answer is what was stored: a sample read back agrees with it.
        for p in granted[:: max(1, len(granted) // 25)]:
            stored = http.get(f"/availability/v1/allocations/{p.order_id}").json()
            assert allocated_of(stored) == allocated_of(p.body)
    assert item["available_to_promise"] == 0
    by_location = {loc["location_id"]: loc for loc in item["locations"]}
    assert set(by_location) == set(STOCK)
    for warehouse, quantity in STOCK.items():
        assert by_location[warehouse]["on_hand"] == quantity
        assert 0 <= by_location[warehouse]["allocated"] <= quantity
    assert sum(loc["allocated"] for loc in by_location.values()) == 1000
    assert ledger_drift(service.settings) == {}


async def same_key_stampede(url: str, token: str, bodies: list[dict[str, Any]]) -> list[Any]:
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "one-key"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120.0) as http:
        return list(
            await asyncio.gather(
                *(http.post("/availability/v1/allocations", json=body) for body in bodies)
            )
        )


def test_one_key_sent_concurrently_allocates_once(
    tmp_path: Path, issuer: TestIssuer, database_url: str | None
) -> None:
    """Requests with one Idempotency-Key land in the same batches: the first allocates,
    the same payload replays its answer, another payload is refused, nothing twice."""
    with AvailabilityProcess(tmp_path, issuer, database_url=database_url) as service:
        service.receive("WH-EAST", SKU, 100)
        service.wait_for_atp(SKU, 100)
        order = {"order_id": "SO-1", "channel": "b2b", "lines": [{"sku": SKU, "quantity": 3}]}
        other = {**order, "order_id": "SO-2"}

        same = asyncio.run(same_key_stampede(service.url, service.token(), [order] * 40))
        assert [r.status_code for r in same] == [201] * 40
        assert len({r.content for r in same}) == 1
        assert sum(r.headers.get("Idempotent-Replayed") != "true" for r in same) == 1

        mixed = asyncio.run(same_key_stampede(service.url, service.token(), [order, other] * 10))
        assert {r.status_code for r in mixed[::2]} == {201}
        assert all(r.headers["Idempotent-Replayed"] == "true" for r in mixed[::2])
        assert {r.status_code for r in mixed[1::2]} == {422}

        service.wait_for_atp(SKU, 97)
        with service.client() as http:
            assert http.get("/availability/v1/allocations/SO-2").status_code == 404
        assert ledger_drift(service.settings) == {}
