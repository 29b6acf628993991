"""A batch planned ahead on a snapshot (decision 0020) is written only if what its plan
relied on still holds in the writer's turn; otherwise it is planned again on the locked
positions and answered from that. Each test commits a competing change between the
plan and the turn, as another worker of the service would, and checks the answer, the
stock and the ledger."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from litestar.testing import TestClient

from process_apis.availability import clock
from process_apis.availability.allocations import service
from process_apis.availability.allocations.batcher import AllocationBatcher
from process_apis.availability.allocations.fast_path import AllocationFastPath
from process_apis.availability.rules import repository as rules
from process_apis.availability.rules.schemas import ChannelRuleIn
from process_apis.availability.schemas import AllocationIn, AllocationLineIn
from shared.db import Database, Tx
from shared.settings import Settings
from tests.availability.helpers import allocate, by_location, item, ledger_drift, stock

Change = Callable[[Database], Awaitable[object]]


class _Racing:
    """The batcher's database, running ``change`` (which commits on its own) once,
    right after the first plan made on a snapshot and before that plan's write."""

    def __init__(self, db: Database, change: Change) -> None:
        self._db = db
        self._change = change
        self.planned = False
        self.raced = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Any]:
        async with self._db.snapshot() as conn:
            yield conn
        self.planned = True

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        if self.planned and not self.raced:
            self.raced = True
            await self._change(self._db)
        async with self._db.transaction() as tx:
            yield tx


def race(client: TestClient[Any], change: Change) -> _Racing:
    fast = client.app.asgi_handler
    assert isinstance(fast, AllocationFastPath)
    batcher: AllocationBatcher = fast.batcher
    assert batcher.plan_ahead
    racing = _Racing(batcher.db, change)
    batcher.db = racing  # type: ignore[assignment]
    return racing


def order(order_id: str, quantity: int) -> AllocationIn:
    return AllocationIn(
        order_id=order_id,
        channel="b2b",
        policy="partial",
        lines=[AllocationLineIn("A", quantity)],
    )


def never_oversold(client: TestClient[Any], settings: Settings) -> int:
    locations = by_location(client, "A")
    for on_hand, allocated in locations.values():
        assert 0 <= allocated <= on_hand
    assert ledger_drift(settings) == {}
    return sum(allocated for _, allocated in locations.values())


def test_stock_taken_meanwhile_is_planned_again(
    client: TestClient[Any], settings: Settings
) -> None:
    """The snapshot showed 10 units; another worker took 8 before the turn. The order
    (5, partial) gets the 2 left, not the 5 it was planned with."""
    stock(client, settings, "WH1", A=10)

    async def take_eight(db: Database) -> None:
        async with db.transaction() as tx:
            await service.allocate(tx, order("OTHER", 8), "key-other")

    racing = race(client, take_eight)
    response = allocate(client, "SO-1", [("A", 5)], policy="partial")

    assert racing.raced
    assert response.status_code == 201
    line = response.json()["lines"][0]
    assert (line["allocated"], line["backordered"]) == (2, 3)
    assert never_oversold(client, settings) == 10
    assert item(client, "A")["available_to_promise"] == 0
    again = allocate(client, "SO-1", [("A", 5)], policy="partial")
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json() == response.json()


def test_a_key_completed_meanwhile_is_replayed_not_allocated_twice(
    client: TestClient[Any], settings: Settings
) -> None:
    """The same request reached another worker (a client's retry) and was committed
    there first: this one answers with that allocation, and the units go out once."""
    stock(client, settings, "WH1", A=10)
    batcher_of_other_worker: list[AllocationBatcher] = []

    async def same_request_elsewhere(_db: Database) -> None:
        other = batcher_of_other_worker[0]
        await other.submit("test-client", "alloc-SO-1", order("SO-1", 4))

    fast = client.app.asgi_handler
    assert isinstance(fast, AllocationFastPath)
    batcher_of_other_worker.append(
        AllocationBatcher(fast.batcher.db, fast.batcher.store, enabled=False)
    )
    racing = race(client, same_request_elsewhere)
    response = allocate(client, "SO-1", [("A", 4)], policy="partial")

    assert racing.raced
    assert response.status_code == 201
    assert response.headers.get("Idempotent-Replayed") == "true"
    assert response.json()["lines"][0]["allocated"] == 4
    assert never_oversold(client, settings) == 4


def test_an_order_allocated_meanwhile_is_a_duplicate(
    client: TestClient[Any], settings: Settings
) -> None:
    stock(client, settings, "WH1", A=10)

    async def same_order_other_key(db: Database) -> None:
        async with db.transaction() as tx:
            await service.allocate(tx, order("SO-1", 3), "another-key")

    racing = race(client, same_order_other_key)
    response = allocate(client, "SO-1", [("A", 5)], policy="partial")

    assert racing.raced
    assert response.status_code == 409
    assert response.json()["type"].endswith("duplicate-allocation")
    assert never_oversold(client, settings) == 3


def test_a_channel_rule_created_meanwhile_applies(
    client: TestClient[Any], settings: Settings
) -> None:
    """A cap of 2 units for b2b arrives between the plan (no rules: 5 units) and the
    turn: the order is held to the cap."""
    stock(client, settings, "WH1", A=10)

    async def cap_b2b(db: Database) -> None:
        cap = ChannelRuleIn(sku="A", kind="cap", channel="b2b", quantity=2)
        async with db.transaction() as tx:
            await rules.write(tx.conn, "cap-b2b-a", cap, clock.now())

    racing = race(client, cap_b2b)
    response = allocate(client, "SO-1", [("A", 5)], policy="partial")

    assert racing.raced
    assert response.status_code == 201
    line = response.json()["lines"][0]
    assert (line["allocated"], line["backordered"]) == (2, 3)
    assert never_oversold(client, settings) == 2
