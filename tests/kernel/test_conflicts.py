"""A deadlock on a real PostgreSQL server (decision 0042): the victim's transaction is
recognised as a conflict, runs again in place when it is its own, is answered 503
(retry, nothing changed) to an HTTP caller, and keeps its event on the bus without
counting as the event's failure."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from litestar import Litestar, get
from litestar.testing import TestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from shared.db import is_conflict, retrying_conflicts
from shared.events.inbox.handlers import is_not_yet
from shared.problems import EXCEPTION_HANDLERS

pytestmark = pytest.mark.postgres


async def _table(url: str) -> AsyncEngine:
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE rows (id int PRIMARY KEY, n int NOT NULL)"))
        await conn.execute(text("INSERT INTO rows VALUES (1, 0), (2, 0)"))
    return engine


async def _crossing(engine: AsyncEngine, first: int, second: int, met: asyncio.Barrier) -> None:
    """Locks ``first``, waits until the other writer has its row, then wants ``second``."""
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE rows SET n = n + 1 WHERE id = :id"), {"id": first})
        await met.wait()
        await conn.execute(text("UPDATE rows SET n = n + 1 WHERE id = :id"), {"id": second})


async def _deadlock(engine: AsyncEngine) -> BaseException:
    """Two writers taking the same two rows in opposite orders: one is the victim."""
    met = asyncio.Barrier(2)
    outcomes = await asyncio.gather(
        _crossing(engine, 1, 2, met), _crossing(engine, 2, 1, met), return_exceptions=True
    )
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(failures) == 1, outcomes  # the other one committed
    return failures[0]


async def test_a_deadlock_victim_is_a_conflict_and_runs_again(postgres_url: str) -> None:
    engine = await _table(postgres_url)
    try:
        victim = await _deadlock(engine)
        assert is_conflict(victim)
        assert is_not_yet(victim)  # an event's handler that lost one is not poison
        assert not is_conflict(ValueError("a bug"))

        met = asyncio.Barrier(2)
        runs: list[int] = []

        async def mine() -> str:
            runs.append(1)
            await _crossing(engine, 1, 2, met if len(runs) == 1 else _Passing())
            return "committed"

        async def theirs() -> None:
            await _crossing(engine, 2, 1, met)

        results = await asyncio.gather(
            retrying_conflicts(mine, what="the test's writer"), theirs(), return_exceptions=True
        )
        # Whichever lost, nothing failed in the end: the retried writer went again.
        if isinstance(results[1], BaseException):
            assert is_conflict(results[1]) and len(runs) == 1
        else:
            assert results[0] == "committed" and len(runs) == 2
        async with engine.connect() as conn:
            total = await conn.scalar(text("SELECT sum(n) FROM rows"))
        # the first deadlock's winner (2) + this round: 2 or 4 more (never a half)
        assert total in (4, 6)
    finally:
        await engine.dispose()


class _Passing:
    async def wait(self) -> None:
        return None


async def test_an_http_caller_is_told_to_retry(postgres_url: str) -> None:
    engine = await _table(postgres_url)
    try:
        victim = await _deadlock(engine)
    finally:
        await engine.dispose()

    @get("/thing", sync_to_thread=False)
    def thing() -> Any:
        raise victim

    app = Litestar([thing], exception_handlers=EXCEPTION_HANDLERS)
    with TestClient(app) as client:
        answer = client.get("/thing")
    assert answer.status_code == 503
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["type"] == "/problems/transaction-conflict"
    assert answer.headers["Retry-After"] == "1"
