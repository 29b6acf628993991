"""The filler's ask and a cancellation's plan of the same order, at the same moment, on
PostgreSQL (decision 0063): whichever commits first wins. A plan committed first keeps
the order from being asked; a fill asked first makes the plan retry (409)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import insert, select

from process_apis.order_to_ship.db import metadata, order_cancellations, orders
from process_apis.order_to_ship.flows.backorders import BackorderFiller
from process_apis.order_to_ship.flows.cancel_order import Plan, _still_as_planned
from shared.db import Database
from shared.events.outbox import outbox_table
from shared.refusals import Refusal
from tests.orders.helpers import write_placed_order

pytestmark = pytest.mark.postgres


async def _plan_stored(db: Database, order_id: str, held: asyncio.Event, go: asyncio.Event) -> None:
    """A cancellation's plan transaction, held open (the order locked) until ``go``."""
    async with db.transaction() as tx:
        await _still_as_planned(tx, order_id, Plan(unreleased={"SKU-A": 2}))
        await tx.conn.execute(
            insert(order_cancellations).values(
                cancellation_id=f"cancel:{order_id}",
                order_id=order_id,
                plan={},
                done=0,
                created_at=datetime.now(UTC),
            )
        )
        held.set()
        await go.wait()


async def _asked(db: Database, order_id: str) -> Any:
    async with db.read() as conn:
        return await conn.scalar(
            select(orders.c.fill_asked_at).where(orders.c.order_id == order_id)
        )


@asynccontextmanager
async def _an_order(postgres_url: str) -> AsyncIterator[tuple[Database, BackorderFiller, str]]:
    """An accepted order on the server, and a filler of its database (asking nothing)."""
    outbox_table(metadata)
    db = Database(postgres_url, metadata)
    await db.create_schema()
    try:
        order_id = await write_placed_order(db, [("SKU-A", 2)], released=False)
        yield db, BackorderFiller(db, partners=None, releaser=None), order_id  # type: ignore[arg-type]
    finally:
        await db.dispose()


async def test_a_fill_asked_while_a_cancellation_plans_waits_and_is_not_asked(
    postgres_url: str,
) -> None:
    async with _an_order(postgres_url) as (db, filler, order_id):
        held, go = asyncio.Event(), asyncio.Event()
        planning = asyncio.create_task(_plan_stored(db, order_id, held, go))
        await held.wait()
        asking = asyncio.create_task(filler._ask_for([order_id]))
        await asyncio.sleep(0.3)
        assert not asking.done()  # it waits on the order's lock
        go.set()
        await planning
        assert await asking == []  # the cancellation's plan counts its backorders
        assert await _asked(db, order_id) is None


async def test_a_cancellation_planned_once_a_fill_is_asked_is_told_to_retry(
    postgres_url: str,
) -> None:
    async with _an_order(postgres_url) as (db, filler, order_id):
        (head,) = await filler._ask_for([order_id])
        assert head.order_id == order_id and await _asked(db, order_id) is not None
        with pytest.raises(Refusal) as refused:
            await _plan_stored(db, order_id, asyncio.Event(), asyncio.Event())
        assert (refused.value.status, refused.value.slug) == (409, "order-in-progress")
        async with db.read() as conn:
            assert (await conn.execute(select(order_cancellations))).all() == []
