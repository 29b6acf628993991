"""SQL for orders (SQLAlchemy Core).

Every change of a placed order goes through :class:`Working`: the order's row locked
(``FOR UPDATE``; SQLite's writer already serialises), its lines as
:class:`LineQuantities`, changed in Python under their invariants, then written back
with the status move checked against the transition table and recorded in the
history, all in the caller's transaction."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any, cast

from sqlalchemy import Insert, Update, bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from process_apis.order_to_ship.db import (
    LINE_QUANTITIES,
    order_lines,
    order_releases,
    order_shipments,
    order_status_history,
    orders,
)
from process_apis.order_to_ship.lifecycle.lines import LineQuantities
from process_apis.order_to_ship.lifecycle.states import check_transition
from shared.correlation import correlation_id
from shared.db import Tx


@dataclass
class NewOrder:
    order_id: str
    customer_id: str
    channel: str
    policy: str
    currency: str
    lines: Sequence[tuple[str, int, int]]  # (sku, quantity, unit_price_minor)
    client_id: str
    idempotency_key: str
    ship_to: dict[str, Any] | None = None
    customer_group: str | None = None
    hold_id: str | None = None
    credit: dict[str, Any] | None = None
    on_hold: bool = False
    correlation_id: str | None = None  # its request's (None: the running context's)


@dataclass
class Working:
    """A placed order loaded for change, its row locked for the transaction."""

    head: Any
    lines: dict[str, LineQuantities]
    prices: dict[str, int]
    status: str
    touched: set[str] = field(default_factory=set)
    saved_at: datetime | None = None  # when ``save`` wrote it, at ``head.version + 1``

    def __post_init__(self) -> None:
        self.cancelled_before = {sku: line.cancelled for sku, line in self.lines.items()}

    @property
    def cancellations_changed(self) -> bool:
        return any(self.lines[sku].cancelled != n for sku, n in self.cancelled_before.items())

    @property
    def order_id(self) -> str:
        return str(self.head.order_id)

    def line(self, sku: str) -> LineQuantities:
        self.touched.add(sku)
        return self.lines[sku]


# The statements every change of an order runs, built once (decision 0043).
_THIS_ORDER = orders.c.order_id == bindparam("at_order")
_HEAD_LOCKED = select(orders).where(_THIS_ORDER).with_for_update()
_LINES_OF = (
    select(order_lines)
    .where(order_lines.c.order_id == bindparam("at_order"))
    .order_by(order_lines.c.line_no)
)
_SAVE_LINE = (
    update(order_lines)
    .where(
        order_lines.c.order_id == bindparam("at_order"), order_lines.c.sku == bindparam("at_sku")
    )
    .values({name: bindparam(f"new_{name}") for name in LINE_QUANTITIES})
)
_HEADS_LOCKED = (
    select(orders)
    .where(orders.c.order_id.in_(bindparam("at_orders", expanding=True)))
    .order_by(orders.c.order_id)
    .with_for_update()
)
_LINES_OF_MANY = (
    select(order_lines)
    .where(order_lines.c.order_id.in_(bindparam("at_orders", expanding=True)))
    .order_by(order_lines.c.order_id, order_lines.c.line_no)
)
_HISTORY_ROW = insert(order_status_history)
_NEW_ORDER = insert(orders)
_NEW_LINES = insert(order_lines)
_SHIPMENT = select(order_shipments).where(order_shipments.c.shipment_id == bindparam("at_shipment"))


@cache
def _save_head(extra: tuple[str, ...]) -> Update:
    """The order row's UPDATE at a change: status, version, time, and ``extra`` columns
    (bind parameters ``new_{column}``), one statement per set of extra columns."""
    columns = ("status", "version", "updated_at", *extra)
    return update(orders).where(_THIS_ORDER).values({c: bindparam(f"new_{c}") for c in columns})


@cache
def _shipment_update(columns: tuple[str, ...]) -> Update:
    return (
        update(order_shipments)
        .where(order_shipments.c.shipment_id == bindparam("at_shipment"))
        .values({c: bindparam(f"new_{c}") for c in columns})
    )


@cache
def _shipment_insert(columns: tuple[str, ...]) -> Insert:
    return insert(order_shipments).values({c: bindparam(f"new_{c}") for c in columns})


async def history_row(
    conn: AsyncConnection,
    order_id: str,
    version: int,
    move: tuple[str | None, str],
    cause: str,
    at: datetime,
) -> None:
    """One status move, numbered by the order's version after it (unique per order and
    rising, so the history needs no counter of its own)."""
    before, after = move
    await conn.execute(
        _HISTORY_ROW,
        {
            "order_id": order_id,
            "seq": version,
            "from_status": before,
            "to_status": after,
            "at": at,
            "cause": cause,
            "correlation_id": correlation_id.get(),
        },
    )


async def insert_pending(conn: AsyncConnection, *news: NewOrder) -> datetime:
    """Writes the orders ``pending``, in three statements however many; returns their
    creation time."""
    now = datetime.now(UTC)
    await conn.execute(
        _NEW_ORDER,
        [
            {
                "order_id": new.order_id,
                "customer_id": new.customer_id,
                "channel": new.channel,
                "policy": new.policy,
                "currency": new.currency,
                "status": "pending",
                "version": 0,
                "client_id": new.client_id,
                "idempotency_key": new.idempotency_key,
                "created_at": now,
                "updated_at": now,
                "ship_to": new.ship_to,
                "customer_group": new.customer_group,
                "hold_id": new.hold_id,
                "hold_reason": "credit" if new.on_hold else None,
                "credit": new.credit,
                "erp_synced_version": 0,
            }
            for new in news
        ],
    )
    zero = dict.fromkeys(LINE_QUANTITIES, 0)
    await conn.execute(
        _NEW_LINES,
        [
            {
                "order_id": new.order_id,
                "line_no": n,
                "sku": sku,
                "quantity": quantity,
                "unit_price_minor": price,
                **zero,
            }
            for new in news
            for n, (sku, quantity, price) in enumerate(new.lines, start=1)
        ],
    )
    running = correlation_id.get()
    await conn.execute(
        _HISTORY_ROW,
        [
            {
                "order_id": new.order_id,
                "seq": 0,
                "from_status": None,
                "to_status": "pending",
                "at": now,
                "cause": "placed",
                "correlation_id": new.correlation_id or running,
            }
            for new in news
        ],
    )
    return now


async def delete_pending(conn: AsyncConnection, order_id: str) -> bool:
    """Removes an order that never got past ``pending`` (a refused placement)."""
    head = await conn.execute(
        select(orders.c.order_id).where(orders.c.order_id == order_id, orders.c.status == "pending")
    )
    if head.first() is None:
        return False
    for table in (order_status_history, order_lines):
        await conn.execute(delete(table).where(table.c.order_id == order_id))
    await conn.execute(delete(orders).where(orders.c.order_id == order_id))
    return True


async def lock(tx: Tx, order_id: str) -> Working | None:
    """The order for change, its row locked for the transaction (None: no such
    order). Taken from what ``lock_many`` loaded ahead when it is there, at most once:
    a second change of the order in the transaction reads what the first wrote."""
    ahead = tx.prefetched.pop(("order", order_id), None)
    if ahead is not None:
        return cast(Working, ahead)
    conn = tx.conn
    head = (await conn.execute(_HEAD_LOCKED, {"at_order": order_id})).first()
    if head is None:
        return None
    # The lines in a statement of their own, after the lock: on PostgreSQL a join
    # locked in one statement would hand back the lines as they were before it waited
    # for the lock (READ COMMITTED re-reads only the locked row), not as the writer it
    # waited for left them (tests/orders/test_returns.py, concurrent RMAs).
    rows = await conn.execute(_LINES_OF, {"at_order": order_id})
    return _working(head, rows)


async def statuses(conn: AsyncConnection, order_ids: Iterable[str]) -> dict[str, str]:
    """The status of each of ``order_ids`` that exists."""
    query = select(orders.c.order_id, orders.c.status).where(
        orders.c.order_id.in_(sorted(set(order_ids)))
    )
    return {str(row.order_id): str(row.status) for row in await conn.execute(query)}


async def lock_many(tx: Tx, order_ids: Iterable[str]) -> None:
    """Locks the orders in order id order (as the releaser and the ERP sync lock
    theirs) and loads them for ``lock`` in two statements: an inbox run's orders."""
    ids = sorted(set(order_ids))
    if not ids:
        return
    heads = (await tx.conn.execute(_HEADS_LOCKED, {"at_orders": ids})).all()
    if not heads:
        return
    rows_of: dict[str, list[Any]] = {str(head.order_id): [] for head in heads}
    for row in await tx.conn.execute(_LINES_OF_MANY, {"at_orders": list(rows_of)}):
        rows_of[row.order_id].append(row)
    for head in heads:
        tx.prefetched[("order", str(head.order_id))] = _working(head, rows_of[head.order_id])


def _working(head: Any, rows: Iterable[Any]) -> Working:
    lines: dict[str, LineQuantities] = {}
    prices: dict[str, int] = {}
    for row in rows:
        lines[row.sku] = LineQuantities(
            row.sku,
            int(row.quantity),
            **{name: int(getattr(row, name)) for name in LINE_QUANTITIES},
        )
        prices[row.sku] = int(row.unit_price_minor)
    return Working(head, lines, prices, str(head.status))


async def save(
    conn: AsyncConnection,
    working: Working,
    status: str,
    cause: str,
    **head_values: Any,
) -> tuple[str, int]:
    """Writes the touched lines and the order's new status (checked against the
    transition table, recorded in the history); returns (previous status, new version)."""
    before = str(working.head.status)
    check_transition(working.order_id, before, status)
    now = datetime.now(UTC)
    if working.touched:
        await conn.execute(
            _SAVE_LINE,
            [
                {
                    "at_order": working.order_id,
                    "at_sku": sku,
                    **{
                        f"new_{name}": getattr(working.lines[sku], name) for name in LINE_QUANTITIES
                    },
                }
                for sku in sorted(working.touched)
            ],
        )
    version = int(working.head.version) + 1
    values = {"status": status, "version": version, "updated_at": now, **head_values}
    await conn.execute(
        _save_head(tuple(sorted(head_values))),
        {"at_order": working.order_id, **{f"new_{c}": v for c, v in values.items()}},
    )
    if status != before:
        await history_row(conn, working.order_id, version, (before, status), cause, now)
    working.status = status
    working.saved_at = now
    return before, version


async def history(conn: AsyncConnection, order_id: str, after: int, limit: int) -> list[Any]:
    h = order_status_history.c
    rows = await conn.execute(
        select(order_status_history)
        .where(h.order_id == order_id, h.seq > after)
        .order_by(h.seq)
        .limit(limit)
    )
    return list(rows)


async def origin(conn: AsyncConnection, order_id: str) -> tuple[str, str] | None:
    """(client_id, Idempotency-Key) the order was placed with."""
    row = (
        await conn.execute(
            select(orders.c.client_id, orders.c.idempotency_key).where(
                orders.c.order_id == order_id
            )
        )
    ).first()
    return (row.client_id, row.idempotency_key) if row else None


# By the index ``orders_by_customer_sync`` (db.py): the check reads the few orders
# the ERP has not heard of, not all of the customer's orders of the day.
_UNSYNCED_OPEN_VALUE = (
    select(
        func.coalesce(
            func.sum(
                (order_lines.c.quantity - order_lines.c.cancelled - order_lines.c.invoiced)
                * order_lines.c.unit_price_minor
            ),
            0,
        )
    )
    .select_from(orders.join(order_lines, orders.c.order_id == order_lines.c.order_id))
    .where(
        orders.c.customer_id == bindparam("at_customer"),
        orders.c.erp_synced_version == 0,
        orders.c.status.notin_(("cancelled", "rejected", "completed")),
    )
)


async def unsynced_open_value(conn: AsyncConnection, customer_id: str) -> int:
    """Value of the customer's live orders the ERP has not heard of yet (the credit
    check adds it to the ERP's exposure, so a burst of orders cannot slip past)."""
    value = await conn.scalar(_UNSYNCED_OPEN_VALUE, {"at_customer": customer_id})
    return int(value or 0)


# -- shipments ---------------------------------------------------------------------
async def shipment(conn: AsyncConnection, shipment_id: str) -> Any:
    return (await conn.execute(_SHIPMENT, {"at_shipment": shipment_id})).first()


async def add_shipment(conn: AsyncConnection, **values: Any) -> None:
    await conn.execute(
        _shipment_insert(tuple(sorted(values))), {f"new_{c}": v for c, v in values.items()}
    )


async def update_shipment(conn: AsyncConnection, shipment_id: str, **values: Any) -> None:
    await conn.execute(
        _shipment_update(tuple(sorted(values))),
        {"at_shipment": shipment_id, **{f"new_{c}": v for c, v in values.items()}},
    )


async def releases_of(conn: AsyncConnection, order_id: str, *, lock: bool = False) -> list[Any]:
    """The order's releases; ``lock``: row-locked, so a releaser's claim (which does not
    take the order's lock) either committed before and shows, or waits."""
    query = (
        select(order_releases)
        .where(order_releases.c.order_id == order_id)
        .order_by(order_releases.c.created_at, order_releases.c.release_id)
    )
    return list(await conn.execute(query.with_for_update() if lock else query))
