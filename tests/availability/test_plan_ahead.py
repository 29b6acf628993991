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
from tests.availability.helpers import allocate, assert_never_oversold, item, stock

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


def allocated_elsewhere(order_id: str, quantity: int, key: str) -> Change:
    """An allocation another worker commits."""

    async def change(db: Database) -> None:
        async with db.transaction() as tx:
            await service.allocate(tx, order(order_id, quantity), key)

    return change


def allocate_racing(
    client: TestClient[Any], settings: Settings, change: Change, quantity: int
) -> Any:
    """10 units of A in stock; order SO-1 for ``quantity`` (partial), with ``change``
    committed between its plan and its turn."""
    stock(client, settings, "WH1", A=10)
    racing = race(client, change)
    response = allocate(client, "SO-1", [("A", quantity)], policy="partial")
    assert racing.raced
    return response


def test_stock_taken_meanwhile_is_planned_again(
    client: TestClient[Any], settings: Settings
) -> None:
    """The snapshot showed 10 units; another worker took 8 before the turn. The order
    (5, partial) gets the 2 left, not the 5 it was planned with."""
    response = allocate_racing(client, settings, allocated_elsewhere("OTHER", 8, "k-8"), 5)

    assert response.status_code == 201
    line = response.json()["lines"][0]
    assert (line["allocated"], line["backordered"]) == (2, 3)
    assert assert_never_oversold(client, settings) == 10
    assert item(client, "A")["available_to_promise"] == 0
    again = allocate(client, "SO-1", [("A", 5)], policy="partial")
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json() == response.json()


def test_a_key_completed_meanwhile_is_replayed_not_allocated_twice(
    client: TestClient[Any], settings: Settings
) -> None:
    """The same request reached another worker (a client's retry) and was committed
    there first: this one answers with that allocation, and the units go out once."""
    fast = client.app.asgi_handler
    assert isinstance(fast, AllocationFastPath)
    other_worker = AllocationBatcher(fast.batcher.db, fast.batcher.store, enabled=False)

    async def same_request_elsewhere(_db: Database) -> None:
        await other_worker.submit("test-client", "alloc-SO-1", order("SO-1", 4))

    response = allocate_racing(client, settings, same_request_elsewhere, 4)

    assert response.status_code == 201
    assert response.headers.get("Idempotent-Replayed") == "true"
    assert response.json()["lines"][0]["allocated"] == 4
    assert assert_never_oversold(client, settings) == 4


def test_an_order_allocated_meanwhile_is_a_duplicate(
    client: TestClient[Any], settings: Settings
) -> None:
    response = allocate_racing(client, settings, allocated_elsewhere("SO-1", 3, "k-3"), 5)

    assert response.status_code == 409
    assert response.json()["type"].endswith("duplicate-allocation")
    assert assert_never_oversold(client, settings) == 3


def test_a_channel_rule_created_meanwhile_applies(
    client: TestClient[Any], settings: Settings
) -> None:
    """A cap of 2 units for b2b arrives between the plan (no rules: 5 units) and the
    turn: the order is held to the cap."""

    async def cap_b2b(db: Database) -> None:
        cap = ChannelRuleIn(sku="A", kind="cap", channel="b2b", quantity=2)
        async with db.transaction() as tx:
            await rules.write(tx.conn, "cap-b2b-a", cap, clock.now())

    response = allocate_racing(client, settings, cap_b2b, 5)

    assert response.status_code == 201
    line = response.json()["lines"][0]
    assert (line["allocated"], line["backordered"]) == (2, 3)
    assert assert_never_oversold(client, settings) == 2
