"""The one transition table: every move it does not hold is refused with a 409
problem and writes nothing (checked on a real orders database)."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest
from sqlalchemy import func, select

from process_apis.order_to_ship.db import metadata, order_status_history, orders
from process_apis.order_to_ship.lifecycle.states import (
    STATUSES,
    TERMINAL,
    TRANSITIONS,
    IllegalTransition,
    check_transition,
)
from process_apis.order_to_ship.orders import repository as repo
from shared.db import Database

ILLEGAL = [
    (a, b) for a, b in itertools.product(STATUSES, STATUSES) if a != b and b not in TRANSITIONS[a]
]


def test_the_table_names_every_state_and_ends_nowhere() -> None:
    assert set(TRANSITIONS) == set(STATUSES)
    assert all(not TRANSITIONS[state] for state in TERMINAL)
    reachable = {"pending"}
    frontier = ["pending"]
    while frontier:
        for nxt in TRANSITIONS[frontier.pop()]:
            if nxt not in reachable:
                reachable.add(nxt)
                frontier.append(nxt)
    assert reachable == set(STATUSES)  # every state can be reached from pending


@pytest.mark.parametrize(("current", "target"), ILLEGAL)
def test_an_illegal_move_is_a_409(current: str, target: str) -> None:
    with pytest.raises(IllegalTransition) as refused:
        check_transition("ORD-1", current, target)
    assert refused.value.status_code == 409
    assert refused.value.type == "/problems/illegal-transition"


async def move(db: Database, target: str) -> None:
    async with db.transaction() as tx:
        working = await repo.lock(tx, "ORD-1")
        assert working is not None
        working.line("A").plan(2, 0)
        await repo.save(tx.conn, working, target, "test")


def test_an_illegal_move_writes_nothing(tmp_path: Path) -> None:
    async def run() -> None:
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'orders.db'}", metadata)
        await db.create_schema()
        try:
            async with db.transaction() as tx:
                await repo.insert_pending(
                    tx.conn,
                    repo.NewOrder("ORD-1", "C1", "web", "reject", "USD", [("A", 2, 100)], "c", "k"),
                )
            for current, target in [(c, t) for c, t in ILLEGAL if c == "pending"]:
                with pytest.raises(IllegalTransition):
                    await move(db, target)
                async with db.read() as conn:
                    head = (await conn.execute(select(orders))).one()
                    history = await conn.scalar(
                        select(func.count()).select_from(order_status_history)
                    )
                assert (head.status, head.version, history) == (current, 0, 1)
        finally:
            await db.dispose()

    asyncio.run(run())
