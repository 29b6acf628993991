"""Turns per invoice for the credits billing computes from the invoice's figures.

A price correction and a return credit both read what is left of a line and credit
part of it; two computed from the same figures could together credit more than was
meant (the ERP caps them only at the whole line). Whoever credits an invoice first
takes its row in ``invoice_claims`` (an insert that loses to a concurrent one, or the
takeover of a row older than ``TTL_SECONDS`` left by a crash) and deletes it when done.
Works across worker processes and on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

from sqlalchemy import bindparam, delete, update

from process_apis.billing.db import invoice_claims
from process_apis.billing.invoices.repository import insert_or_skip
from shared.db import Database

TTL_SECONDS = 60.0


class Busy(Exception):
    """Another worker is crediting one of these invoices right now."""


async def _take(db: Database, invoice_id: str, holder: str) -> bool:
    now = datetime.now(UTC)
    async with db.transaction() as tx:
        row = {"invoice_id": invoice_id, "holder": holder, "claimed_at": now}
        written = await tx.conn.execute(insert_or_skip(tx.conn, invoice_claims), row)
        if written.rowcount == 1:
            return True
        stale = now - timedelta(seconds=TTL_SECONDS)
        params = {"at_invoice": invoice_id, "stale": stale, "new_holder": holder, "now": now}
        taken = await tx.conn.execute(_TAKE_OVER, params)
        return bool(taken.rowcount == 1)


async def _release(db: Database, invoice_ids: Sequence[str], holder: str) -> None:
    async with db.transaction() as tx:
        params = {"invoice_ids": list(invoice_ids), "at_holder": holder}
        await tx.conn.execute(_RELEASE, params)


# Built once, with bind parameters (a turn is taken for every return credited): a
# statement built per call costs SQLAlchemy more than running it. An UPDATE's bind
# parameters may not be named as its table's columns.
_TAKE_OVER = (
    update(invoice_claims)
    .where(
        invoice_claims.c.invoice_id == bindparam("at_invoice"),
        invoice_claims.c.claimed_at < bindparam("stale"),
    )
    .values(holder=bindparam("new_holder"), claimed_at=bindparam("now"))
)
_RELEASE = delete(invoice_claims).where(
    invoice_claims.c.invoice_id.in_(bindparam("invoice_ids", expanding=True)),
    invoice_claims.c.holder == bindparam("at_holder"),
)


@asynccontextmanager
async def turn(
    db: Database, invoice_ids: Sequence[str], *, wait_seconds: float = 10.0
) -> AsyncIterator[None]:
    """The invoices' turn, waited for up to ``wait_seconds`` (then ``Busy``); taken in
    sorted order so that two holders of overlapping sets never wait on each other."""
    holder = uuid.uuid4().hex
    held: list[str] = []
    deadline = asyncio.get_running_loop().time() + wait_seconds
    try:
        for invoice_id in sorted(set(invoice_ids)):
            while not await _take(db, invoice_id, holder):
                if asyncio.get_running_loop().time() >= deadline:
                    raise Busy(f"invoice {invoice_id} is being credited; retry")
                await asyncio.sleep(0.05)
            held.append(invoice_id)
        yield
    finally:
        if held:
            await _release(db, held, holder)
