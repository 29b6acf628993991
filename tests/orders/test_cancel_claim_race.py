"""A cancel and the releaser's claim of the same queued release, at the same moment, on
PostgreSQL: the claim does not take the order's lock, so the cancel locks the release
rows. Whichever commits first wins; the cancel never counts units as held back that
the releaser is sending (it is told 409, order in progress, and plans again)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import insert, select, update

from process_apis.order_to_ship.db import metadata, order_releases, orders
from process_apis.order_to_ship.flows.cancel_order import _hold_back_queued
from shared.db import Database
from shared.refusals import Refusal

pytestmark = pytest.mark.postgres
ORDER = "ORD-RACE-1"


async def _order_with_a_queued_release(db: Database) -> None:
    now = datetime.now(UTC)
    async with db.transaction() as tx:
        await tx.conn.execute(
            insert(orders).values(
                order_id=ORDER,
                customer_id="C1",
                channel="edi",
                policy="partial",
                currency="USD",
                status="accepted",
                version=1,
                client_id="cli",
                idempotency_key="k",
                created_at=now,
                updated_at=now,
            )
        )
        await tx.conn.execute(
            insert(order_releases).values(
                release_id=f"{ORDER}:1",
                order_id=ORDER,
                warehouse_id="WH-1",
                lines=[{"sku": "A", "quantity": 3}],
                status="queued",
                created_at=now,
            )
        )


async def test_a_cancel_waits_for_a_claim_in_flight_and_is_told_to_retry(
    postgres_url: str,
) -> None:
    db = Database(postgres_url, metadata)
    await db.create_schema()
    try:
        await _order_with_a_queued_release(db)
        claimer = await db.engine.connect()
        claim = await claimer.begin()
        # the releaser's claim, not committed yet
        await claimer.execute(
            update(order_releases)
            .where(order_releases.c.release_id == f"{ORDER}:1")
            .values(status="sending")
        )

        async def cancel() -> None:
            async with db.transaction() as tx:
                await _hold_back_queued(tx, ORDER, {"A": 3})

        cancelling = asyncio.create_task(cancel())
        await asyncio.sleep(0.3)
        assert not cancelling.done()  # it waits on the release row
        await claim.commit()
        await claimer.close()
        with pytest.raises(Refusal) as refused:
            await cancelling
        assert refused.value.status_code == 409
        assert refused.value.slug == "order-in-progress"
        async with db.read() as conn:
            row = (await conn.execute(select(order_releases))).one()
        assert row.status == "sending" and row.lines == [{"sku": "A", "quantity": 3}]
    finally:
        await db.dispose()
