"""SQLite statements run from a plan (decision 0051): a statement's shape is planned at
its first run, and from then on skips
SQLAlchemy's per-execution set-up inside the writer's transaction, and means exactly
what it meant through ``Connection.execute``: the same rows, types, keys, rowcount
and errors. Whatever a plan cannot reproduce runs SQLAlchemy's way."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    delete,
    func,
    insert,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.exc import IntegrityError, StatementError

from shared.db import Database
from shared.db.savepoints import savepoint
from shared.db.statement_plans import PlannedResult
from shared.sqltypes import UtcDateTime

metadata = MetaData()
items = Table(
    "items",
    metadata,
    Column("item_id", Integer, primary_key=True),
    Column("sku", String(20), nullable=False, unique=True),
    Column("active", Boolean, nullable=False),
    Column("attributes", JSON, nullable=False),
    Column("seen_at", UtcDateTime(), nullable=False),
    Column("note", String(20), nullable=True),
)
NOON = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def _with_db(tmp_path: Path, body: Callable[[Database], Awaitable[Any]]) -> Any:
    async def run() -> Any:
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'plans.db'}", metadata)
        await db.create_schema()
        try:
            async with db.transaction() as tx:
                await tx.conn.execute(
                    insert(items),
                    [
                        {
                            "item_id": n,
                            "sku": f"SKU-{n}",
                            "active": n % 2 == 0,
                            "attributes": {"n": n, "tags": ["a", "b"]},
                            "seen_at": NOON + timedelta(minutes=n),
                            "note": None if n == 3 else f"note {n}",
                        }
                        for n in range(1, 6)
                    ],
                )
            return await body(db)
        finally:
            await db.dispose()

    return asyncio.run(run())


def _both_ways(tmp_path: Path, statement: Any, parameters: Any = None) -> tuple[Any, Any]:
    """The statement run in the writer's transaction from its plan (twice: the first
    run makes it), and by SQLAlchemy's own ``Connection.execute``."""

    async def body(db: Database) -> tuple[Any, Any]:
        async with db.transaction() as tx:
            await tx.conn.execute(statement, parameters)
            planned = await tx.conn.execute(statement, parameters)
            assert isinstance(planned, PlannedResult)
            planned_rows = planned.all()
            usual = tx.conn.sync_connection.execute(statement, parameters)  # type: ignore[union-attr]
            return planned_rows, usual.all()

    return _with_db(tmp_path, body)


@pytest.mark.parametrize(
    ("statement", "parameters"),
    [
        (select(items).order_by(items.c.item_id), None),
        (select(items).where(items.c.sku.in_(["SKU-2", "SKU-4", "nope"])), None),
        (
            select(items.c.sku, items.c.seen_at).where(
                items.c.seen_at >= bindparam("since"), items.c.active.is_(True)
            ),
            {"since": datetime(2026, 12, 6, 13, 3, tzinfo=timezone(timedelta(hours=1)))},
        ),
        (select(func.count().label("n"), func.max(items.c.item_id)).select_from(items), None),
        (select(items.c.attributes["n"].as_integer().label("n")).order_by(items.c.item_id), None),
        (select(items.c.note).where(items.c.note.is_(None)), None),
    ],
    ids=["all", "in-list", "bound-datetime", "aggregates", "json-path", "null"],
)
def test_a_planned_select_returns_what_sqlalchemy_returns(
    tmp_path: Path, statement: Any, parameters: Any
) -> None:
    planned, usual = _both_ways(tmp_path, statement, parameters)
    assert planned == usual
    assert planned  # each case selects something
    assert [type(v) for v in planned[0]] == [type(v) for v in usual[0]]


def test_planned_rows_answer_by_name_by_column_and_as_mappings(tmp_path: Path) -> None:
    async def body(db: Database) -> list[Any]:
        query = select(items.c.item_id, items.c.seen_at, items.c.attributes).where(
            items.c.item_id == 2
        )
        async with db.transaction() as tx:
            await tx.conn.execute(query)
            row = (await tx.conn.execute(query)).one()
            mapping = (await tx.conn.execute(query)).mappings().one()
            scalar = await tx.conn.scalar(select(items.c.sku).where(items.c.item_id == 2))
            scalars = (await tx.conn.execute(select(items.c.item_id))).scalars().all()
            return [
                row.item_id,
                row._mapping[items.c.seen_at],
                row[2],
                dict(mapping),
                scalar,
                scalars,
            ]

    item_id, seen_at, attributes, mapping, scalar, scalars = _with_db(tmp_path, body)
    assert item_id == 2
    assert seen_at == NOON + timedelta(minutes=2)
    assert seen_at.tzinfo is not None  # the type's result processor ran
    assert attributes == {"n": 2, "tags": ["a", "b"]}  # so did JSON's
    assert mapping == {"item_id": 2, "seen_at": seen_at, "attributes": attributes}
    assert scalar == "SKU-2"
    assert sorted(scalars) == [1, 2, 3, 4, 5]


def test_planned_writes_change_what_they_say_and_count_their_rows(tmp_path: Path) -> None:
    async def body(db: Database) -> list[Any]:
        counts = []
        async with db.transaction() as tx:
            for n in (10, 11):  # the first run makes the plan and runs from it
                written = await tx.conn.execute(
                    insert(items).values(
                        item_id=n,
                        sku=f"SKU-{n}",
                        active=True,
                        attributes={"n": n},
                        seen_at=NOON,
                    )
                )
                assert isinstance(written, PlannedResult)
            for skus in (["SKU-1", "SKU-2"], ["SKU-3", "SKU-4", "SKU-5"]):
                changed = await tx.conn.execute(
                    update(items).where(items.c.sku.in_(skus)).values(note="changed")
                )
                counts.append(changed.rowcount)
            gone = await tx.conn.execute(delete(items).where(items.c.item_id == 10))
            counts.append(gone.rowcount)
            returned = await tx.conn.execute(
                update(items)
                .where(items.c.item_id == 11)
                .values(note="back")
                .returning(items.c.item_id, items.c.seen_at)
            )
            counts.append(returned.all())
        async with db.lookup() as conn:
            notes = (await conn.execute(select(items.c.note).order_by(items.c.item_id))).all()
        return [counts, [n for (n,) in notes]]

    counts, notes = _with_db(tmp_path, body)
    assert counts[:3] == [2, 3, 1]
    assert counts[3] == [(11, NOON)]
    assert notes == ["changed"] * 5 + ["back"]


def test_a_planned_statements_error_is_sqlalchemys_and_a_savepoint_undoes_it(
    tmp_path: Path,
) -> None:
    async def body(db: Database) -> list[Any]:
        duplicate = insert(items).values(
            item_id=bindparam("item_id"),
            sku="SKU-1",
            active=True,
            attributes={},
            seen_at=NOON,
        )
        async with db.transaction() as tx:
            await tx.conn.execute(update(items).where(items.c.item_id == 1).values(note="x"))
            for item_id in (20, 21):
                with pytest.raises(IntegrityError) as refused:
                    async with savepoint(tx.conn):
                        await tx.conn.execute(duplicate, {"item_id": item_id})
                assert "UNIQUE" in str(refused.value.orig)
            still = await tx.conn.scalar(select(items.c.note).where(items.c.item_id == 1))
        async with db.lookup() as conn:
            count = await conn.scalar(select(func.count()).select_from(items))
        return [still, count]

    assert _with_db(tmp_path, body) == ["x", 5]


def test_what_a_plan_cannot_reproduce_runs_sqlalchemys_way(tmp_path: Path) -> None:
    async def body(db: Database) -> list[Any]:
        answers = []
        async with db.transaction() as tx:
            for statement, parameters in [
                (select(items.c.item_id).where(items.c.sku.in_([])), None),
                (
                    select(items.c.item_id).where(
                        tuple_(items.c.item_id, items.c.sku).in_([(1, "SKU-1")])
                    ),
                    None,
                ),
                (text("SELECT sku FROM items WHERE item_id = :n"), {"n": 4}),
                (
                    select(items.c.sku)
                    .where(items.c.item_id == 5)
                    .execution_options(stream_results=False),
                    None,
                ),
            ]:
                for _ in range(2):
                    result = await tx.conn.execute(statement, parameters)
                answers.append((type(result).__name__, result.all()))
            with pytest.raises(StatementError, match="required for bind parameter"):
                await tx.conn.execute(select(items).where(items.c.item_id == bindparam("n")))
        return answers

    answers = _with_db(tmp_path, body)
    assert answers[0] == ("CursorResult", [])
    assert answers[1] == ("CursorResult", [(1,)])
    assert answers[2] == ("CursorResult", [("SKU-4",)])
    assert answers[3] == ("CursorResult", [("SKU-5",)])


def test_plain_sql_runs_on_sqlite3_as_sqlalchemy_would_pass_it(tmp_path: Path) -> None:
    """``exec_driver_sql`` (savepoints, ``shared/bulk.py``'s multi-row inserts): rows of
    positional values are an executemany, rows come back with the cursor's names, an
    error is SQLAlchemy's."""

    async def body(db: Database) -> list[Any]:
        async with db.transaction() as tx:
            many = await tx.conn.exec_driver_sql(
                "UPDATE items SET note = ? WHERE item_id = ?", [("a", 1), ("b", 2), ("c", 99)]
            )
            assert isinstance(many, PlannedResult)
            rows = (
                await tx.conn.exec_driver_sql(
                    "SELECT item_id AS id, note FROM items WHERE item_id <= ? ORDER BY 1", (2,)
                )
            ).all()
            with pytest.raises(IntegrityError):
                await tx.conn.exec_driver_sql("UPDATE items SET sku = 'SKU-1' WHERE item_id = 2")
            return [many.rowcount, [(row.id, row.note) for row in rows]]

    assert _with_db(tmp_path, body) == [2, [(1, "a"), (2, "b")]]


def test_a_planned_executemany_writes_every_set_and_counts_them(tmp_path: Path) -> None:
    """A list of parameter sets runs as one executemany, as SQLAlchemy runs it; an
    error in any set is SQLAlchemy's, and a savepoint undoes the whole statement."""
    by_id = (
        update(items)
        .where(items.c.item_id == bindparam("at_item"))
        .values(note=bindparam("new_note"), seen_at=bindparam("new_seen"))
    )

    async def body(db: Database) -> list[Any]:
        later = NOON + timedelta(days=1)
        async with db.transaction() as tx:
            changed = await tx.conn.execute(
                by_id,
                [{"at_item": n, "new_note": f"many {n}", "new_seen": later} for n in (1, 2, 3, 99)],
            )
            assert isinstance(changed, PlannedResult)
            added = await tx.conn.execute(
                insert(items),
                [
                    {
                        "item_id": n,
                        "sku": f"NEW-{n}",
                        "active": False,
                        "attributes": [n],
                        "seen_at": later,
                    }
                    for n in (30, 31)
                ],
            )
            with pytest.raises(IntegrityError):
                async with savepoint(tx.conn):
                    await tx.conn.execute(
                        insert(items),
                        [
                            {
                                "item_id": n,
                                "sku": "SKU-1" if n == 41 else f"X-{n}",
                                "active": True,
                                "attributes": {},
                                "seen_at": later,
                            }
                            for n in (40, 41)
                        ],
                    )
        async with db.lookup() as conn:
            rows = (
                await conn.execute(
                    select(items.c.item_id, items.c.note, items.c.seen_at, items.c.attributes)
                    .where(items.c.item_id.in_([1, 2, 3, 4, 30, 31, 40]))
                    .order_by(items.c.item_id)
                )
            ).all()
        return [changed.rowcount, added.rowcount, [tuple(r) for r in rows]]

    later = NOON + timedelta(days=1)
    changed, added, rows = _with_db(tmp_path, body)
    assert changed == 3
    assert added == 2
    assert rows == [
        (1, "many 1", later, {"n": 1, "tags": ["a", "b"]}),
        (2, "many 2", later, {"n": 2, "tags": ["a", "b"]}),
        (3, "many 3", later, {"n": 3, "tags": ["a", "b"]}),
        (4, "note 4", NOON + timedelta(minutes=4), {"n": 4, "tags": ["a", "b"]}),
        (30, None, later, [30]),
        (31, None, later, [31]),
    ]


def test_a_statement_derived_from_a_planned_one_runs_from_its_own_plan(tmp_path: Path) -> None:
    """A statement keeps the plan it last ran from; one built from it (``.where()``
    copies its attributes) must not run from that plan."""
    base = select(items.c.item_id).order_by(items.c.item_id)

    async def body(db: Database) -> list[Any]:
        async with db.transaction() as tx:
            before = (await tx.conn.execute(base)).all()
            narrowed = (await tx.conn.execute(base.where(items.c.item_id > 3))).all()
            limited = (await tx.conn.execute(base.limit(2))).all()
            again = (await tx.conn.execute(base)).all()
        return [before, narrowed, limited, again]

    before, narrowed, limited, again = _with_db(tmp_path, body)
    assert before == again == [(1,), (2,), (3,), (4,), (5,)]
    assert narrowed == [(4,), (5,)]
    assert limited == [(1,), (2,)]
