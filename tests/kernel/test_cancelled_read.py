"""A read cancelled mid-statement stays cancelled: the read's clean-up must not turn
the cancellation into an ordinary error (``PendingRollbackError``), or a task that is
told to stop (a relay at shutdown) would log an error and carry on instead."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import MetaData, text

from shared.db import Database

# Long enough to be running when it is cancelled: about a second of SQLite's time.
SLOW = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 15000000)"
    " SELECT count(*) FROM c"
)


async def _cancelled_mid_read(db_path: Path) -> BaseException | None:
    db = Database(f"sqlite+aiosqlite:///{db_path}", MetaData())
    await db.create_schema()

    async def slow_read() -> None:
        async with db.read() as conn:
            await conn.execute(text(SLOW))

    task = asyncio.create_task(slow_read())
    await asyncio.sleep(0.2)
    task.cancel()
    try:
        await task
    except BaseException as exc:
        return exc
    finally:
        await db.dispose()
    return None


def test_a_read_cancelled_mid_statement_raises_cancelled(tmp_path: Path) -> None:
    found = asyncio.run(_cancelled_mid_read(tmp_path / "reads.db"))
    assert isinstance(found, asyncio.CancelledError), repr(found)
