"""A batch whose items each carry their own key (``IdempotencyStore.run_each_once``), on
SQLite and on a real PostgreSQL server. The batch runs without savepoints first and,
should an item be refused, again with one per item (decision 0059): either way a
refused item leaves nothing (not the rows it wrote before its refusal, not its events,
not its key), the others commit with their records, and the same batch sent again
replays the stored answers and refuses the same item again."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgspec
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select

from shared.db import Database, Tx
from shared.events.envelope import new_event
from shared.events.outbox import outbox_table
from shared.idempotency import IdempotencyStore
from shared.refusals import Refusal

metadata = MetaData()
items = Table("items", metadata, Column("name", String(20), primary_key=True), Column("n", Integer))
outbox_table(metadata)


class Made(msgspec.Struct):
    name: str


def _effect(names: list[str]) -> Any:
    async def effect(tx: Tx, n: int) -> tuple[int, Made]:
        name = names[n]
        # Written before the refusal: the refused item's row must not stay.
        await tx.conn.execute(insert(items).values(name=name, n=n))
        tx.emit(
            "test",
            new_event(source="t", type_="made", subject=name, sequence=1, payload=Made(name)),
        )
        if name.startswith("bad"):
            raise Refusal(422, "bad-item", f"{name} is refused.")
        return 201, Made(name)

    return effect


async def _rows(db: Database) -> list[str]:
    async with db.read() as conn:
        return list(await conn.scalars(select(items.c.name).order_by(items.c.name)))


async def _check(url: str) -> None:
    db = Database(url, metadata)
    store = IdempotencyStore(db)
    await db.create_schema()
    published: list[Any] = []
    db.on_commit(published.extend)
    try:
        names = ["a", "bad-b", "c"]
        batch = [(f"k-{name}", {"name": name}) for name in names]
        answers = await store.run_each_once(client_id="cl", items=batch, effect=_effect(names))
        assert [a.status_code for a in answers[::2]] == [201, 201]
        refusal = answers[1].refusal
        assert refusal is not None and refusal.status == 422
        assert await _rows(db) == ["a", "c"]
        assert sorted(event.subject for _, event in published) == ["a", "c"]

        # All of it again: a and c replayed (nothing runs twice), bad-b refused again.
        again = await store.run_each_once(client_id="cl", items=batch, effect=_effect(names))
        assert [(a.status_code, a.replayed) for a in again[::2]] == [(201, True), (201, True)]
        assert again[1].refusal is not None
        assert await _rows(db) == ["a", "c"]
        assert len(published) == 2

        # A batch with nothing refused commits every item.
        good = ["d", "e"]
        done = await store.run_each_once(
            client_id="cl", items=[(f"k-{n}", {"name": n}) for n in good], effect=_effect(good)
        )
        assert [(a.status_code, a.replayed) for a in done] == [(201, False), (201, False)]
        assert await _rows(db) == ["a", "c", "d", "e"]
    finally:
        await db.dispose()


def test_run_each_once_on_sqlite(tmp_path: Path) -> None:
    asyncio.run(_check(f"sqlite+aiosqlite:///{tmp_path}/each.db"))


@pytest.mark.postgres
def test_run_each_once_on_postgresql(postgres_url: str) -> None:
    asyncio.run(_check(postgres_url))
