"""One SQL statement's cost inside the SQLite writer's transaction, from its plan and
SQLAlchemy's way, in the same run (decision 0051).

    .venv/bin/python -m bench.statements [--statements 5000] [--json results.json]

A real ``shared.db.Database`` on a file; for each statement kind (a SELECT by key, an
INSERT, an UPDATE by key, a SELECT with an IN list of 20; each built once with bound
parameters, as the services keep their hot statements), and for a whole lookup of one
row (``Database.lookup()``: its connection, BEGIN, the SELECT, its end) it runs
``--statements`` of them in one write transaction, three times each way: planned (the
default) and with plans turned off (``Connection.execute``: what every statement cost
before), and ``sqlite3`` alone for the floor. Prints microseconds of process CPU per
statement (the best of the three) and the saving.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

from sqlalchemy import Column, Integer, MetaData, String, Table, bindparam, insert, select, update

from shared.db import Database, sqlite_driver

metadata = MetaData()
rows = Table(
    "rows",
    metadata,
    Column("row_id", Integer, primary_key=True),
    Column("sku", String(20), nullable=False),
    Column("quantity", Integer, nullable=False),
)
IN_LIST = 20


def _kinds() -> dict[str, Callable[[int], tuple[Any, Any]]]:
    # Built once with bound parameters, as the services keep their hot statements.
    by_key = select(rows.c.sku, rows.c.quantity).where(rows.c.row_id == bindparam("at_row"))
    add = insert(rows)
    count = (
        update(rows)
        .where(rows.c.row_id == bindparam("at_row"))
        .values(quantity=rows.c.quantity + 1)
    )
    some = select(rows.c.row_id).where(rows.c.row_id.in_(bindparam("ids", expanding=True)))
    return {
        "select by key": lambda i: (by_key, {"at_row": i % 100 + 1}),
        "insert": lambda i: (add, {"sku": f"SKU-{i}", "quantity": i}),
        "update by key": lambda i: (count, {"at_row": i % 100 + 1}),
        f"select in ({IN_LIST})": lambda i: (some, {"ids": list(range(i % 50, i % 50 + IN_LIST))}),
    }


def _unplanned(*_: Any) -> None:
    return None  # what plans turned off answer: run it SQLAlchemy's way


async def _per_statement(db: Database, make: Callable[[int], tuple[Any, Any]], n: int) -> float:
    async with db.transaction() as tx:
        started = time.process_time()
        for i in range(n):
            statement, parameters = make(i)
            result = await tx.conn.execute(statement, parameters)
            if statement.is_select:
                result.all()
        return (time.process_time() - started) / n * 1e6


async def _per_lookup(db: Database, n: int) -> float:
    by_key = select(rows.c.sku).where(rows.c.row_id == bindparam("at_row"))
    started = time.process_time()
    for i in range(n):
        async with db.lookup() as conn:
            (await conn.execute(by_key, {"at_row": i % 100 + 1})).all()
    return (time.process_time() - started) / n * 1e6


def _raw(path: Path, n: int) -> float:
    conn = sqlite3.connect(path)
    try:
        conn.execute("BEGIN")
        started = time.process_time()
        for i in range(n):
            conn.execute(
                "SELECT sku, quantity FROM rows WHERE row_id = ?", (i % 100 + 1,)
            ).fetchall()
        spent = time.process_time() - started
        conn.rollback()
        return spent / n * 1e6
    finally:
        conn.close()


async def measure(n: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-statements-") as directory:
        path = Path(directory) / "statements.db"
        db = Database(f"sqlite+aiosqlite:///{path}", metadata)
        await db.create_schema()
        async with db.transaction() as tx:
            await tx.conn.execute(
                insert(rows), [{"sku": f"SKU-{i}", "quantity": 0} for i in range(1, 101)]
            )
        figures: dict[str, Any] = {}
        try:
            for kind, make in _kinds().items():
                planned = min([await _per_statement(db, make, n) for _ in range(3)])
                with mock.patch.object(sqlite_driver, "run_planned", _unplanned):
                    usual = min([await _per_statement(db, make, n) for _ in range(3)])
                figures[kind] = {"planned_us": round(planned, 1), "sqlalchemy_us": round(usual, 1)}
            planned = min([await _per_lookup(db, n) for _ in range(3)])
            with mock.patch.object(sqlite_driver, "run_planned", _unplanned):
                usual = min([await _per_lookup(db, n) for _ in range(3)])
            figures["a lookup of one row"] = {
                "planned_us": round(planned, 1),
                "sqlalchemy_us": round(usual, 1),
            }
        finally:
            await db.dispose()
        figures["sqlite3 alone, select by key"] = {"us": round(_raw(path, n), 1)}
        return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--statements", type=int, default=5000)
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    figures = asyncio.run(measure(args.statements))
    for kind, numbers in figures.items():
        if "planned_us" in numbers:
            saved = 1 - numbers["planned_us"] / numbers["sqlalchemy_us"]
            print(
                f"{kind:>22}: planned {numbers['planned_us']:6.1f} µs, "
                f"SQLAlchemy's way {numbers['sqlalchemy_us']:6.1f} µs ({saved:.0%} less)"
            )
        else:
            print(f"{kind:>22}: {numbers['us']:6.1f} µs")
    if args.json:
        args.json.write_text(json.dumps({"statements": args.statements, "figures": figures}))


if __name__ == "__main__":
    main()
