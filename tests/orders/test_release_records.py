"""The releaser records what the WMS answered for a batch of releases in one
transaction (decision 0059), on SQLite and on a real PostgreSQL server: each sent
release moves its order's lines to ``released``; a release that no longer fits its
order is marked ``failed`` and keeps none of the batch's others from being recorded."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select

from process_apis.order_to_ship.db import metadata, order_releases
from process_apis.order_to_ship.flows.releases import Releaser
from process_apis.order_to_ship.orders import repository as repo
from shared.db import Database
from shared.events.outbox import outbox_table
from tests.orders.helpers import write_placed_order


async def _sending(db: Database, allocated: int, sent: Sequence[tuple[str, int]]) -> str:
    """An accepted order of ``allocated`` SKU-A whose release of ``sent`` is in flight."""
    order_id = await write_placed_order(db, [("SKU-A", allocated)], released=False)
    async with db.transaction() as tx:
        await tx.conn.execute(
            insert(order_releases).values(
                release_id=f"{order_id}:1",
                order_id=order_id,
                warehouse_id="WH-1",
                lines=[{"sku": sku, "quantity": q} for sku, q in sent],
                status="sending",
                attempts=1,
                created_at=datetime.now(UTC),
            )
        )
    return order_id


async def _release(db: Database, order_id: str) -> Any:
    async with db.read() as conn:
        rows = await conn.execute(
            select(order_releases).where(order_releases.c.order_id == order_id)
        )
        return rows.one()


async def _order(db: Database, order_id: str) -> tuple[str, int]:
    async with db.transaction() as tx:
        working = await repo.lock(tx, order_id)
    assert working is not None
    return working.status, working.lines["SKU-A"].released


async def test_a_release_that_no_longer_fits_fails_alone(database_url: str) -> None:
    outbox_table(metadata)  # as the service's runtime declares it
    db = Database(database_url, metadata)
    await db.create_schema()
    try:
        fits = await _sending(db, 3, [("SKU-A", 3)])
        too_many = await _sending(db, 1, [("SKU-A", 2)])  # more than its order allocated
        also_fits = await _sending(db, 2, [("SKU-A", 2)])
        rows = [await _release(db, order_id) for order_id in (fits, too_many, also_fits)]
        releaser = Releaser(db, partners=None)  # type: ignore[arg-type]  # records only
        await releaser.record([(row, f"FO-{n}", None) for n, row in enumerate(rows)])

        assert await _order(db, fits) == ("released", 3)
        assert await _order(db, also_fits) == ("released", 2)
        assert await _order(db, too_many) == ("accepted", 0)
        recorded = {order_id: await _release(db, order_id) for order_id in (fits, too_many)}
        assert (recorded[fits].status, recorded[fits].fulfillment_order_id) == ("sent", "FO-0")
        assert recorded[too_many].status == "failed"
        assert "does not fit" in recorded[too_many].last_error
    finally:
        await db.dispose()
