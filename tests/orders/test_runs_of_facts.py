"""A run of warehouse and billing facts applied in one transaction (decision 0059), on
SQLite and on a real PostgreSQL server: the run's orders are locked and loaded at its
start, and each fact applies to what the facts before it wrote, several facts of one
order included (a handler takes the loaded order once; the next reads what it wrote).
A fact for an order this platform does not know is ignored, as one at a time."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from process_apis.order_to_ship.db import metadata, order_status_history
from process_apis.order_to_ship.orders import repository as repo
from process_apis.order_to_ship.orders.events import lock_orders_of_run, order_of
from process_apis.order_to_ship.warehouse.events import handlers
from shared.db import Database
from shared.events.bus import Delivery
from shared.events.envelope import Event
from shared.events.inbox import inbox_tables
from shared.events.inbox.apply import Applier
from shared.events.inbox.outcomes import APPLIED
from shared.events.outbox import outbox_table
from tests.orders.helpers import uid, write_placed_order
from tests.support.events import invoice_issued, shipment_dispatched


def _shipment(order_id: str, lines: Sequence[tuple[str, int]], shipment_id: str) -> Event:
    return shipment_dispatched(
        order_id,
        "WH-1",
        lines,
        fulfillment_order_id="FO-1",
        shipment_id=shipment_id,
        tracking_number=uid("1Z"),
        sequence=1,
    )


async def _lines(db: Database, order_id: str) -> dict[str, tuple[int, int]]:
    async with db.transaction() as tx:
        working = await repo.lock(tx, order_id)
    assert working is not None
    return {sku: (line.shipped, line.invoiced) for sku, line in working.lines.items()}


async def _moves(db: Database, order_id: str) -> list[str]:
    h = order_status_history.c
    async with db.read() as conn:
        rows = await conn.execute(select(h.to_status).where(h.order_id == order_id).order_by(h.seq))
        return [str(row.to_status) for row in rows]


async def test_a_run_applies_each_fact_to_what_the_one_before_wrote(database_url: str) -> None:
    outbox_table(metadata)  # as the service's runtime declares them
    tables = inbox_tables(metadata)
    db = Database(database_url, metadata)
    await db.create_schema()
    started: list[list[str]] = []

    async def run_start(tx: Any, events: Sequence[Event]) -> None:
        await lock_orders_of_run(tx, events)
        started.append(sorted(key[1] for key in tx.prefetched))

    applier = Applier(
        db=db,
        tables=tables,
        handlers=handlers(db, partners=None),  # type: ignore[arg-type]  # no short picks
        ordered_types=(),
        may_have_parked=lambda _: False,
        run_order=order_of,
        run_start=run_start,
    )
    try:
        two_lines = await write_placed_order(db, [("SKU-A", 3), ("SKU-B", 1)], released=True)
        one_line = await write_placed_order(db, [("SKU-A", 5)], released=True)
        first, second = uid("SHP"), uid("SHP")
        events = [
            _shipment(two_lines, [("SKU-A", 2)], first),
            _shipment(one_line, [("SKU-A", 5)], uid("SHP")),
            invoice_issued(two_lines, first, "CUST-1"),
            _shipment(two_lines, [("SKU-A", 1), ("SKU-B", 1)], second),
            _shipment("ORD-not-ours", [("SKU-A", 1)], uid("SHP")),
        ]
        run = [(n, Delivery("tally.wms", str(n), e, 1)) for n, e in enumerate(events)]
        results = await applier.apply_run(run)

        assert set(results.values()) == {APPLIED}
        # Both orders loaded at the run's start, in one go (the unknown one is not there).
        assert started == [sorted([two_lines, one_line])]
        assert await _lines(db, two_lines) == {"SKU-A": (3, 2), "SKU-B": (1, 0)}
        assert await _lines(db, one_line) == {"SKU-A": (5, 0)}
        assert await _moves(db, two_lines) == [
            "pending",
            "released",
            "partially_shipped",
            "shipped",
        ]
        assert await _moves(db, one_line) == ["pending", "released", "shipped"]
    finally:
        await db.dispose()
