"""The one way a placed order's change is committed: lines and status written (the
status checked against the transition table and recorded in the history), the ERP's
sales order marked for sync, and ``order.status_changed`` in the outbox when the
status moved, all in the caller's transaction."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import bindparam, func, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from process_apis.order_to_ship.db import applied_documents, erp_sync_wanted, order_releases
from process_apis.order_to_ship.flows.erp_sync import erp_status
from process_apis.order_to_ship.lifecycle.states import TERMINAL, operational_status
from process_apis.order_to_ship.orders import repository as repo
from process_apis.order_to_ship.orders.events import EVENT_SOURCE
from shared.db import Tx
from shared.events.catalog import STREAM_ORDERS, OrderStatusChanged
from shared.events.envelope import Event, new_event

# States the lines do not decide: the order stays in them until a command moves it.
_HELD = frozenset({"pending", "on_hold"}) | TERMINAL


def next_status(working: repo.Working) -> str:
    if working.status in _HELD:
        return working.status
    return operational_status(working.lines.values())


async def commit(
    tx: Tx,
    working: repo.Working,
    cause: str,
    *,
    status: str | None = None,
    causation: Event | None = None,
    announce: bool = True,
    **head_values: Any,
) -> str:
    """Writes the change; returns the order's status after it. ``announce=False``: the
    caller emits its own event for this version (``order.accepted``)."""
    target = status or next_status(working)
    before, version = await repo.save(tx.conn, working, target, cause, **head_values)
    if (
        before == "pending"
        or working.cancellations_changed
        or erp_status(before) != erp_status(target)
    ):
        # What the ERP's sales order holds changed (its lines' open value, its status):
        # releases, picks and shipments do not, so they cost the ERP nothing.
        await want_erp_sync(tx, working.order_id)
    if announce and target != before:
        tx.emit(
            STREAM_ORDERS,
            new_event(
                source=EVENT_SOURCE,
                type_="order.status_changed",
                subject=working.order_id,
                sequence=version,
                payload=OrderStatusChanged(
                    order_id=working.order_id,
                    customer_id=str(working.head.customer_id),
                    status=target,
                    previous_status=before,
                    cause=cause,
                ),
                causation=causation,
            ),
        )
    return target


async def want_erp_sync(tx: Tx, order_id: str) -> None:
    await tx.conn.execute(
        _want_erp_sync(tx.conn.dialect.name), {"order_id": order_id, "since": datetime.now(UTC)}
    )


@cache
def _want_erp_sync(dialect: str) -> Any:
    insert_of = sqlite_insert if dialect == "sqlite" else pg_insert
    return insert_of(erp_sync_wanted).on_conflict_do_nothing()


def upsert(tx: Tx, table: Any) -> Any:
    """An INSERT that can say what to do on a conflict, in the database's dialect."""
    return (sqlite_insert if tx.conn.dialect.name == "sqlite" else pg_insert)(table)


_DOCUMENT_APPLIED = select(applied_documents.c.document_id).where(
    applied_documents.c.document_id == bindparam("at_document")
)
_RECORD_DOCUMENT = insert(applied_documents)
_RELEASES_OF_ORDER = select(func.count()).where(order_releases.c.order_id == bindparam("at_order"))
_QUEUE_RELEASES = insert(order_releases)


async def document_applied(tx: Tx, document_id: str, order_id: str) -> bool:
    """True when the warehouse document was applied before; records it otherwise."""
    if await tx.conn.scalar(_DOCUMENT_APPLIED, {"at_document": document_id}) is not None:
        return True
    await tx.conn.execute(
        _RECORD_DOCUMENT,
        {"document_id": document_id, "order_id": order_id, "applied_at": datetime.now(UTC)},
    )
    return False


def by_warehouse(located: Iterable[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """[{sku, location_id, quantity}] -> {warehouse: [{sku, quantity}]} (sorted)."""
    picks: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for claim in located:
        quantity = int(claim.get("quantity", 0))
        if quantity > 0:
            picks[str(claim["location_id"])][str(claim["sku"])] += quantity
    return {
        warehouse: [{"sku": sku, "quantity": q} for sku, q in sorted(by_sku.items())]
        for warehouse, by_sku in sorted(picks.items())
    }


async def queue_releases(
    tx: Tx, order_id: str, located: Iterable[Mapping[str, Any]], *, first: bool = False
) -> int:
    """Queues the located units for the warehouses (the releaser sends them); returns
    how many releases were queued. ``first``: the order has none yet (it is being
    accepted), so they are numbered from 1 without counting."""
    per_warehouse = by_warehouse(located)
    if not per_warehouse:
        return 0
    count = 0 if first else await tx.conn.scalar(_RELEASES_OF_ORDER, {"at_order": order_id})
    now = datetime.now(UTC)
    rows = [
        {
            "release_id": f"{order_id}:{n}",
            "order_id": order_id,
            "warehouse_id": warehouse,
            "lines": lines,
            "status": "queued",
            "attempts": 0,
            "created_at": now,
        }
        for n, (warehouse, lines) in enumerate(per_warehouse.items(), start=int(count or 0) + 1)
    ]
    await tx.conn.execute(_QUEUE_RELEASES, rows)
    return len(rows)
