from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from litestar.testing import TestClient

from shared.settings import Settings
from tests.availability.helpers import allocate, assert_never_oversold, item, stock

ORDERS = 40


def run_concurrently(
    client: TestClient[Any], quantities: list[int], policy: str
) -> list[tuple[int, int, dict[str, Any]]]:
    def one(n: int) -> tuple[int, int, dict[str, Any]]:
        response = allocate(client, f"SO-{n}", [("A", quantities[n])], policy=policy)
        return quantities[n], response.status_code, response.json()

    with ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(one, range(len(quantities))))


def test_concurrent_reject_allocations_never_oversell(
    client: TestClient[Any], settings: Settings
) -> None:
    stock(client, settings, "WH1", A=60)
    stock(client, settings, "WH2", A=40)
    quantities = [n % 5 + 1 for n in range(ORDERS)]  # 120 units asked for 100 there

    results = run_concurrently(client, quantities, "reject")

    assert {status for _, status, _ in results} == {201, 409}
    granted = [q for q, status, _ in results if status == 201]
    refused = [q for q, status, _ in results if status == 409]
    total = assert_never_oversold(client, settings)
    assert total == sum(granted) <= 100
    left = item(client, "A")["available_to_promise"]
    assert left == 100 - total
    # A refusal is only ever for want of stock: ATP only fell, so none would fit now.
    assert all(q > left for q in refused)


def test_concurrent_partial_allocations_take_exactly_what_there_is(
    client: TestClient[Any], settings: Settings
) -> None:
    stock(client, settings, "WH1", A=60)
    stock(client, settings, "WH2", A=40)
    quantities = [n % 5 + 1 for n in range(ORDERS)]

    results = run_concurrently(client, quantities, "partial")

    assert {status for _, status, _ in results} == {201}
    allocated = sum(body["lines"][0]["allocated"] for _, _, body in results)
    backordered = sum(body["lines"][0]["backordered"] for _, _, body in results)
    assert (allocated, backordered) == (100, 20)
    assert assert_never_oversold(client, settings) == 100
    assert item(client, "A")["available_to_promise"] == 0


def test_a_failed_batch_is_replayed_one_request_at_a_time(
    client: TestClient[Any], settings: Settings, monkeypatch: Any
) -> None:
    """When the batch pass fails as a whole (here: every batch of more than one, planned
    ahead or on the locked positions), each request is replayed in its own transaction:
    every caller still gets its own answer, nothing is lost, doubled or oversold, and a
    replay of a key replays its answer."""
    from process_apis.availability.allocations import batcher

    real = batcher.allocate_many
    real_write = batcher.write_planned
    failed: list[int] = []

    async def fail_when_grouped(tx: Any, requests: Any) -> Any:
        if len(requests) > 1:
            failed.append(len(requests))
            raise RuntimeError("the batch lost its connection")
        return await real(tx, requests)

    async def fail_write_when_grouped(tx: Any, planned: Any) -> Any:
        if len(planned.outcomes) > 1:
            raise RuntimeError("the batch lost its connection")
        return await real_write(tx, planned)

    monkeypatch.setattr(batcher, "allocate_many", fail_when_grouped)
    monkeypatch.setattr(batcher, "write_planned", fail_write_when_grouped)
    stock(client, settings, "WH1", A=30)
    quantities = [2] * ORDERS  # 80 units asked for 30 there

    results = run_concurrently(client, quantities, "partial")

    assert failed, "no batch of more than one formed; the fallback was not exercised"
    assert {status for _, status, _ in results} == {201}
    allocated = sum(body["lines"][0]["allocated"] for _, _, body in results)
    assert allocated == 30
    assert assert_never_oversold(client, settings) == 30
    again = allocate(client, "SO-0", [("A", 2)], policy="partial")
    assert again.status_code == 201
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json() == results[0][2]
