"""SQL for RMAs (SQLAlchemy Core).

Every change of an RMA happens under its order's lock (``orders.repository.lock``):
creating one, receipts, dispositions, a rejection and the sweeper all lock the order
first, so two RMAs of one order never count the same shipped units, and the order
line's ``returned`` is recounted from its RMAs in the same transaction
(:func:`recount`)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from process_apis.order_to_ship.db import (
    RMA_QUANTITIES,
    applied_documents,
    rma_lines,
    rma_registrations,
    rmas,
)
from process_apis.order_to_ship.flows.changes import upsert
from process_apis.order_to_ship.orders.repository import Working
from process_apis.order_to_ship.returns.schemas import Rma, RmaLine
from process_apis.order_to_ship.returns.states import check_transition, counted
from shared.db import Tx

log = logging.getLogger("tally.orders.returns")


@dataclass
class RmaWorking:
    """An RMA loaded for change (its order locked by the caller)."""

    head: Any
    lines: dict[str, dict[str, int]]
    status: str
    touched: set[str] = field(default_factory=set)
    moves: list[tuple[str, str, int]] = field(default_factory=list)  # (from, to, version)
    version: int = 0

    def __post_init__(self) -> None:
        self.version = int(self.head.version)

    @property
    def rma_id(self) -> str:
        return str(self.head.rma_id)

    @property
    def order_id(self) -> str:
        return str(self.head.order_id)

    def line(self, sku: str) -> dict[str, int]:
        self.touched.add(sku)
        return self.lines[sku]

    def move(self, target: str) -> None:
        """A status move, checked against the table; each one is its own version (and
        its own ``return.status_changed``)."""
        if target == self.status:
            return
        check_transition(self.rma_id, self.status, target)
        self.version += 1
        self.moves.append((self.status, target, self.version))
        self.status = target

    @property
    def finished(self) -> int:
        """Received units with their final disposition, over every line."""
        return sum(
            line["restocked"] + line["damaged"] + line["scrapped"] + line["returned_to_vendor"]
            for line in self.lines.values()
        )

    @property
    def received(self) -> int:
        return sum(line["received"] for line in self.lines.values())

    @property
    def all_received(self) -> bool:
        return all(line["received"] >= line["authorized"] for line in self.lines.values())


async def insert_rma(
    conn: AsyncConnection,
    *,
    rma_id: str,
    order_id: str,
    customer_id: str,
    reason: str | None,
    lines: dict[str, int],
    expires_at: datetime,
    client_id: str,
    now: datetime,
) -> None:
    await conn.execute(
        insert(rmas).values(
            rma_id=rma_id,
            order_id=order_id,
            customer_id=customer_id,
            status="authorized",
            reason=reason,
            version=1,
            expires_at=expires_at,
            client_id=client_id,
            created_at=now,
            updated_at=now,
        )
    )
    zero = dict.fromkeys(RMA_QUANTITIES, 0)
    await conn.execute(
        insert(rma_lines),
        [
            {**zero, "rma_id": rma_id, "sku": sku, "authorized": quantity}
            for sku, quantity in sorted(lines.items())
        ],
    )


async def order_of(conn: AsyncConnection, rma_id: str) -> str | None:
    found = await conn.scalar(select(rmas.c.order_id).where(rmas.c.rma_id == rma_id))
    return None if found is None else str(found)


async def _lines(conn: AsyncConnection, rma_ids: Iterable[str]) -> dict[str, list[Any]]:
    ids = list(rma_ids)
    found: dict[str, list[Any]] = {i: [] for i in ids}
    if not ids:
        return found
    rows = await conn.execute(
        select(rma_lines)
        .where(rma_lines.c.rma_id.in_(ids))
        .order_by(rma_lines.c.rma_id, rma_lines.c.sku)
    )
    for row in rows:
        found[row.rma_id].append(row)
    return found


async def load_for_change(conn: AsyncConnection, rma_id: str) -> RmaWorking | None:
    """The RMA for change; the caller holds its order's lock."""
    head = (await conn.execute(select(rmas).where(rmas.c.rma_id == rma_id))).first()
    if head is None:
        return None
    lines = (await _lines(conn, [rma_id]))[rma_id]
    return RmaWorking(
        head,
        {row.sku: {name: int(getattr(row, name)) for name in RMA_QUANTITIES} for row in lines},
        str(head.status),
    )


async def save(conn: AsyncConnection, rma: RmaWorking, now: datetime, **head_values: Any) -> None:
    for sku in sorted(rma.touched):
        await conn.execute(
            update(rma_lines)
            .where(rma_lines.c.rma_id == rma.rma_id, rma_lines.c.sku == sku)
            .values(**rma.lines[sku])
        )
    # The version counts status moves only: its events' sequence has no gaps.
    await conn.execute(
        update(rmas)
        .where(rmas.c.rma_id == rma.rma_id)
        .values(status=rma.status, version=rma.version, updated_at=now, **head_values)
    )


async def recount(conn: AsyncConnection, working: Working) -> bool:
    """Sets each order line's ``returned`` from the order's RMAs (``states.counted``);
    True when one changed. Raises ``QuantityRefused`` above what shipped."""
    heads = {
        row.rma_id: str(row.status)
        for row in await conn.execute(
            select(rmas.c.rma_id, rmas.c.status).where(rmas.c.order_id == working.order_id)
        )
    }
    totals = dict.fromkeys(working.lines, 0)
    for rma_id, lines in (await _lines(conn, heads)).items():
        for row in lines:
            if row.sku in totals:
                totals[row.sku] += counted(heads[rma_id], int(row.authorized), int(row.received))
    changed = False
    for sku, total in totals.items():
        shipped = working.lines[sku].shipped
        if total > shipped:
            # Only a receipt the WMS took after its RMA ended can do this (a race with the
            # sweeper): the units are recorded on the RMA, the line keeps its bound.
            log.error("order %s: %d %s on RMAs, %d shipped", working.order_id, total, sku, shipped)
            total = shipped
        if working.lines[sku].returned != total:
            working.line(sku).count_returned(total)
            changed = True
    return changed


# -- the WMS registration queue -------------------------------------------------------
async def want_registration(tx: Tx, rma_id: str, version: int) -> None:
    """Queues the RMA's state for the WMS (``notifier.py`` sends it after commit). A
    newer version replaces a queued or in-flight one: the in-flight send then does not
    mark it sent, so the newest state always goes out."""
    now = datetime.now(UTC)
    await tx.conn.execute(
        upsert(tx, rma_registrations)
        .values(rma_id=rma_id, version=version, status="queued", attempts=0, queued_at=now)
        .on_conflict_do_update(
            index_elements=["rma_id"],
            set_={"version": version, "status": "queued", "queued_at": now},
        )
    )


R = rma_registrations.c


async def due_registrations(conn: AsyncConnection, stale_before: datetime, limit: int) -> list[Any]:
    rows = await conn.execute(
        select(rma_registrations)
        .where(or_(R.status == "queued", and_(R.status == "sending", R.sent_at < stale_before)))
        .order_by(R.queued_at, R.rma_id)
        .limit(limit)
    )
    return list(rows)


# -- reads ----------------------------------------------------------------------------
def _rma(head: Any, lines: list[Any], synced: bool) -> Rma:
    return Rma(
        rma_id=head.rma_id,
        order_id=head.order_id,
        customer_id=head.customer_id,
        status=head.status,
        reason=head.reason,
        lines=[
            RmaLine(sku=row.sku, **{name: int(getattr(row, name)) for name in RMA_QUANTITIES})
            for row in lines
        ],
        expires_at=head.expires_at,
        rejection_reason=head.rejection_reason,
        created_at=head.created_at,
        updated_at=head.updated_at,
        wms_synced=synced,
    )


async def load(conn: AsyncConnection, query: Any) -> list[Rma]:
    heads = (await conn.execute(query)).all()
    ids = [head.rma_id for head in heads]
    if not ids:
        return []
    lines = await _lines(conn, ids)
    # A change the WMS must hear of queues the RMA again: "sent" is its current state.
    synced = {
        row.rma_id
        for row in await conn.execute(select(R.rma_id).where(R.rma_id.in_(ids), R.status == "sent"))
    }
    return [_rma(head, lines[head.rma_id], head.rma_id in synced) for head in heads]


async def get(conn: AsyncConnection, rma_id: str) -> Rma | None:
    found = await load(conn, select(rmas).where(rmas.c.rma_id == rma_id))
    return found[0] if found else None


async def of_order(
    conn: AsyncConnection, order_id: str, after: str | None, limit: int
) -> list[Rma]:
    query = select(rmas).where(rmas.c.order_id == order_id).order_by(rmas.c.rma_id).limit(limit)
    if after:
        query = query.where(rmas.c.rma_id > after)
    return await load(conn, query)


def _matching(
    order_ids: tuple[str, ...], statuses: tuple[str, ...], customer_id: str | None
) -> list[Any]:
    clauses: list[Any] = []
    if order_ids:
        clauses.append(rmas.c.order_id.in_(sorted(set(order_ids))))
    if statuses:
        clauses.append(rmas.c.status.in_(sorted(set(statuses))))
    if customer_id is not None:
        clauses.append(rmas.c.customer_id == customer_id)
    return clauses


async def page(
    conn: AsyncConnection,
    *,
    order_ids: tuple[str, ...],
    statuses: tuple[str, ...],
    customer_id: str | None,
    after: str | None,
    limit: int,
) -> list[Rma]:
    query = (
        select(rmas)
        .where(*_matching(order_ids, statuses, customer_id))
        .order_by(rmas.c.rma_id)
        .limit(limit)
    )
    if after:
        query = query.where(rmas.c.rma_id > after)
    return await load(conn, query)


async def count(
    conn: AsyncConnection,
    *,
    order_ids: tuple[str, ...],
    statuses: tuple[str, ...],
    customer_id: str | None,
) -> int:
    found = await conn.scalar(
        select(func.count()).select_from(rmas).where(*_matching(order_ids, statuses, customer_id))
    )
    return int(found or 0)


async def expiring(conn: AsyncConnection, now: datetime, limit: int) -> list[tuple[str, str]]:
    """(rma_id, order_id) of open RMAs past their expiry that the sweeper ends."""
    rows = await conn.execute(
        select(rmas.c.rma_id, rmas.c.order_id)
        .where(rmas.c.status.in_(("authorized", "inspected")), rmas.c.expires_at <= now)
        .order_by(rmas.c.expires_at, rmas.c.rma_id)
        .limit(limit)
    )
    return [(row.rma_id, row.order_id) for row in rows]


async def document_seen(conn: AsyncConnection, document_id: str) -> bool:
    """True when the warehouse document was applied (``changes.document_applied``)."""
    found = await conn.scalar(
        select(applied_documents.c.document_id).where(
            applied_documents.c.document_id == document_id
        )
    )
    return found is not None
