"""Return authorizations (RMAs) in the reference WMS (ADR 0032).

The order service registers each RMA here (PUT, whole); the dock receives returned
goods only against one that is authorized, not expired, and has room for every sku of
the receipt. A receipt takes its units from the RMA in the receipt's own transaction:
the RMA's row is locked first (``FOR UPDATE`` on PostgreSQL; SQLite's BEGIN IMMEDIATE
already serialises writers), then each sku's ``received`` rises by a guarded UPDATE
(``received + q <= authorized``), so concurrent receipts never together exceed it."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db import Database, Tx
from system_apis.wms import db as tables
from system_apis.wms.port import (
    DuplicateLine,
    RmaBelowReceived,
    RmaClosed,
    RmaExhausted,
    RmaOrderMismatch,
    RmaRequired,
    UnknownRma,
)
from system_apis.wms.schemas import (
    ReturnAuthorization,
    ReturnAuthorizationIn,
    ReturnAuthorizationLine,
)

RMA = tables.return_authorizations
RMAL = tables.return_authorization_lines


async def load_rma(conn: AsyncConnection, rma_id: str) -> ReturnAuthorization | None:
    head = (await conn.execute(select(RMA).where(RMA.c.rma_id == rma_id))).first()
    if head is None:
        return None
    rows = (
        await conn.execute(select(RMAL).where(RMAL.c.rma_id == rma_id).order_by(RMAL.c.sku))
    ).all()
    return ReturnAuthorization(
        rma_id=head.rma_id,
        order_id=head.order_id,
        status=head.status,
        expires_at=head.expires_at,
        lines=[ReturnAuthorizationLine(r.sku, r.authorized, r.received) for r in rows],
        updated_at=head.updated_at,
    )


async def _locked_head(conn: AsyncConnection, rma_id: str) -> Any:
    return (await conn.execute(select(RMA).where(RMA.c.rma_id == rma_id).with_for_update())).first()


def _totals(pairs: Iterable[tuple[str, int]]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for sku, quantity in pairs:
        totals[sku] = totals.get(sku, 0) + quantity
    return totals


async def claim_rma(
    conn: AsyncConnection,
    rma_id: str | None,
    order_id: str | None,
    lines: Iterable[tuple[str, int]],
    now: datetime,
) -> str:
    """Takes ``lines`` (sku, quantity) from the RMA's room, in the caller's transaction,
    and answers the RMA's order id. Refuses, having changed nothing the caller keeps
    (it rolls back), a missing, unknown, closed or exhausted RMA, or another order."""
    if rma_id is None:
        raise RmaRequired(
            "A return is received against a return authorization: give its rma_id "
            "(the order service authorizes returns)."
        )
    head = await _locked_head(conn, rma_id)
    if head is None:
        raise UnknownRma(f"No return authorization {rma_id}.")
    if order_id is not None and order_id != head.order_id:
        raise RmaOrderMismatch(
            f"Return authorization {rma_id} is for order {head.order_id}, not {order_id}."
        )
    if head.status != "authorized":
        raise RmaClosed(f"Return authorization {rma_id} is {head.status}.")
    if head.expires_at <= now:
        raise RmaClosed(f"Return authorization {rma_id} expired at {head.expires_at.isoformat()}.")
    for sku, quantity in sorted(_totals(lines).items()):
        c = RMAL.c
        result = await conn.execute(
            update(RMAL)
            .where(c.rma_id == rma_id, c.sku == sku, c.received + quantity <= c.authorized)
            .values(received=c.received + quantity)
        )
        if result.rowcount != 1:
            row = (await conn.execute(select(RMAL).where(c.rma_id == rma_id, c.sku == sku))).first()
            authorized, received = (row.authorized, row.received) if row else (0, 0)
            raise RmaExhausted(
                f"Return authorization {rma_id} has room for {authorized - received} of {sku}"
                f" (authorized {authorized}, received {received}), not {quantity}.",
                sku=sku,
                authorized=authorized,
                received=received,
            )
    await conn.execute(update(RMA).where(RMA.c.rma_id == rma_id).values(updated_at=now))
    return str(head.order_id)


class ReferenceReturnAuthorizations:
    db: Database

    async def put_return_authorization(
        self, tx: Tx, rma_id: str, rma: ReturnAuthorizationIn
    ) -> tuple[ReturnAuthorization, bool]:
        skus = [line.sku for line in rma.lines]
        if len(set(skus)) != len(skus):
            raise DuplicateLine("Each sku may appear on one line of a return authorization.")
        conn = tx.conn
        now = datetime.now(UTC)
        dialect_insert: Any = sqlite_insert if conn.dialect.name == "sqlite" else pg_insert
        created = await conn.scalar(
            dialect_insert(RMA)
            .values(
                rma_id=rma_id,
                order_id=rma.order_id,
                status=rma.status,
                expires_at=rma.expires_at,
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=["rma_id"])
            .returning(RMA.c.rma_id)
        )
        head = await _locked_head(conn, rma_id)
        assert head is not None
        if head.order_id != rma.order_id:
            raise RmaOrderMismatch(
                f"Return authorization {rma_id} is for order {head.order_id}, not {rma.order_id}."
            )
        c = RMAL.c
        received = {
            r.sku: r.received
            for r in (await conn.execute(select(c.sku, c.received).where(c.rma_id == rma_id)))
        }
        wanted = {line.sku: line.quantity for line in rma.lines}
        for sku, got in sorted(received.items()):
            if got > wanted.get(sku, 0):
                raise RmaBelowReceived(
                    f"{got} of {sku} were already received against {rma_id}: it may not "
                    f"authorize {wanted.get(sku, 0)}.",
                    sku=sku,
                    received=got,
                )
        current = await load_rma(conn, rma_id)
        assert current is not None
        unchanged = (
            current.status == rma.status
            and current.expires_at == rma.expires_at
            and {x.sku: x.authorized for x in current.lines} == wanted
        )
        if unchanged:  # the same PUT again: nothing moves, not even updated_at
            return current, created is not None
        await conn.execute(delete(RMAL).where(c.rma_id == rma_id))
        await conn.execute(
            insert(RMAL),
            [
                {"rma_id": rma_id, "sku": sku, "authorized": q, "received": received.get(sku, 0)}
                for sku, q in sorted(wanted.items())
            ],
        )
        await conn.execute(
            update(RMA)
            .where(RMA.c.rma_id == rma_id)
            .values(status=rma.status, expires_at=rma.expires_at, updated_at=now)
        )
        found = await load_rma(conn, rma_id)
        assert found is not None
        return found, created is not None

    async def get_return_authorization(self, rma_id: str) -> ReturnAuthorization | None:
        async with self.db.read() as conn:
            return await load_rma(conn, rma_id)
