"""An inbox run's ``run_start`` (decisions 0058, 0059): called once at the start of the
run's transaction with the events the run handles, before any handler, on every
engine: a service takes every row lock of the run there in one order (PostgreSQL), or
loads what its handlers would read one by one."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import MetaData, text

from shared.db import Database, Tx
from shared.events.bus import Delivery
from shared.events.envelope import Event
from shared.events.inbox import ApplyOnly, inbox_tables
from shared.events.inbox.apply import Applier
from tests.support.events import thing_event


async def test_a_run_starts_with_its_hook_in_its_transaction(
    database_url: str,
) -> None:
    metadata = MetaData()
    tables = inbox_tables(metadata)
    db = Database(database_url, metadata)
    await db.create_schema()
    calls: list[str] = []
    transactions: list[int] = []

    async def backend_xid(tx: Tx) -> int:
        if db.sqlite:
            return 0
        return int(await tx.conn.scalar(text("SELECT txid_current()")))

    async def lock_first(tx: Tx, events: Sequence[Event]) -> None:
        calls.append("locks " + ",".join(str(e.sequence) for e in events))
        transactions.append(await backend_xid(tx))

    async def handle(tx: Tx, event: Event) -> None:
        calls.append(f"apply {event.sequence}")
        transactions.append(await backend_xid(tx))

    applier = Applier(
        db=db,
        tables=tables,
        handlers={"thing.done": ApplyOnly(handle)},
        ordered_types=(),
        may_have_parked=lambda _: False,
        run_start=lock_first,
    )
    events = [
        thing_event("s-1", 1),
        thing_event("s-1", 2, type_="thing.ignored"),
        thing_event("s-2", 3),
    ]
    run = [(n, Delivery("tally.test", str(n), e, 1)) for n, e in enumerate(events)]
    try:
        await applier.apply_run(run)
    finally:
        await db.dispose()

    # Once, first, with the handled events only, in the run's one transaction.
    assert calls == ["locks 1,3", "apply 1", "apply 3"]
    assert len(set(transactions)) == 1
