"""Shared pieces of the fault tests: buses, WMS-shaped events, reading a service's own
SQLite database directly (counting effects), and polling with a deadline."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager, closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from shared.events.bus import EventBus, open_bus
from shared.events.catalog import STREAM_WMS
from shared.events.envelope import Event
from system_apis.wms.events import receipt_posted
from system_apis.wms.schemas import Receipt, StockLine

T = TypeVar("T")


@asynccontextmanager
async def bus_at(url: str, **options: Any) -> AsyncIterator[EventBus]:
    bus = open_bus(url, **options)
    try:
        yield bus
    finally:
        await bus.close()


async def stream_events(bus: EventBus, stream: str = STREAM_WMS) -> list[Event]:
    """Every event stored on the stream, in stream order."""
    out: list[Event] = []
    after: Any = None
    while True:
        page = await (
            bus.read_all(stream, after=after, limit=500)
            if after is not None
            else bus.read_all(stream, limit=500)
        )
        if not page:
            return out
        out.extend(event for _, _, event in page)
        after = page[-1][0]


def receipt_event(
    warehouse_id: str, stock_version: int, receipt_id: str, lines: Iterable[tuple[str, int]]
) -> Event:
    """A ``receipt.posted`` built by the WMS's own event builder (subject
    ``warehouse:<id>``, sequence = the warehouse's stock version after the receipt)."""
    receipt = Receipt(
        receipt_id,
        warehouse_id,
        [StockLine(sku, quantity) for sku, quantity in lines],
        datetime.now(UTC),
    )
    return receipt_posted(receipt, stock_version)


# -- reading a service's own database --------------------------------------------


def query(db_path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows from the service's SQLite file; [] while the file or table does not exist."""
    if not db_path.exists():
        return []
    with closing(sqlite3.connect(db_path, timeout=30)) as conn:
        try:
            return list(conn.execute(sql, params).fetchall())
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []
            raise


def count(db_path: Path, table: str, where: str = "1=1", params: tuple[Any, ...] = ()) -> int:
    rows = query(db_path, f"SELECT COUNT(*) FROM {table} WHERE {where}", params)
    return int(rows[0][0]) if rows else 0


def on_hand(db_path: Path) -> dict[tuple[str, str], int]:
    """on_hand per (sku, location) from availability's positions table."""
    rows = query(db_path, "SELECT sku, location_id, SUM(on_hand) FROM positions GROUP BY 1, 2")
    return {(sku, location): int(total) for sku, location, total in rows}


POSITION_COLUMNS = (
    "sku, location_id, lot, on_hand, allocated, reserved, external_committed,"
    " quality_control, damaged, hold, safety_stock, incoming, on_order, backordered"
)


def positions(db_path: Path) -> list[tuple[Any, ...]]:
    """Every bucket of every position (not versions or times: those differ between runs)."""
    return query(
        db_path,
        f"SELECT {POSITION_COLUMNS} FROM positions ORDER BY sku, location_id, lot",
    )


# -- waiting -------------------------------------------------------------------


async def group_settled(bus: EventBus, group: str) -> bool:
    """True once the group has read its streams and has nothing pending and nothing left
    to read. A group the engine does not list yet has read nothing, so it is not settled
    (an empty list once let a run end before a slow consumer had started). Engines
    without ``lag()`` yet answer True (the caller's effect counts are then the only
    check)."""
    try:
        lags = await bus.lag()
    except (AttributeError, NotImplementedError):
        return True
    mine = [lag for lag in lags if lag.group == group]
    return bool(mine) and all(lag.pending == 0 and lag.lag == 0 for lag in mine)
