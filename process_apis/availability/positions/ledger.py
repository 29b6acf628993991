"""Position changes. Each change is one conditional UPDATE of a position, guarded in
SQL so no bucket goes negative (and, for an allocation, so ATP covers it), plus one
row in the append-only movement ledger, both in the caller's transaction.

``reserved`` as stored is the sum of the holds not yet released, expired or converted
by a write. A hold past its ``expires_at`` stops counting at once: every ATP decision
adds back the lapsed holds of the position, evaluated in SQL against ``now``
(``active_atp_expression``), so correctness never waits for the expiry sweeper."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Update, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from process_apis.availability.db import (
    ATP_DEDUCTIONS,
    BUCKETS,
    delta_column,
    hold_lines,
    movements,
    positions,
)
from process_apis.availability.read_cache import touched
from shared.bulk import BulkInsert
from shared.db import Tx
from shared.events.catalog import STREAM_AVAILABILITY, InventoryReplenished
from shared.events.envelope import Event, new_event

SOURCE = "tally.availability"


class PositionKey(NamedTuple):
    sku: str
    location_id: str
    lot: str = ""


@dataclass(frozen=True, slots=True)
class Cause:
    """Why a position changed: the ledger's reason code, source system, reference
    document and the idempotency key (or event id) of the request that changed it."""

    reason: str
    source: str
    reference: str
    idempotency_key: str | None = None


def atp_expression() -> ColumnElement[Any]:
    expr: ColumnElement[Any] = positions.c.on_hand
    for bucket in ATP_DEDUCTIONS:
        expr = expr - positions.c[bucket]
    return expr


def lapsed_reserved(now: datetime | ColumnElement[Any]) -> ColumnElement[Any]:
    """Per position (correlated to ``positions``): the stored ``reserved`` of holds
    whose time ran out by ``now`` but that no write has expired yet."""
    lapsed = (
        select(func.coalesce(func.sum(hold_lines.c.quantity), 0))
        .where(
            hold_lines.c.sku == positions.c.sku,
            hold_lines.c.location_id == positions.c.location_id,
            hold_lines.c.lot == positions.c.lot,
            hold_lines.c.active == 1,
            hold_lines.c.expires_at <= now,
        )
        .scalar_subquery()
    )
    return lapsed


def active_atp_expression(now: datetime | ColumnElement[Any]) -> ColumnElement[Any]:
    """ATP with only the holds still active at ``now`` deducted."""
    return atp_expression() + lapsed_reserved(now)


def atp_of(values: Mapping[str, int]) -> int:
    return values["on_hand"] - sum(values[bucket] for bucket in ATP_DEDUCTIONS)


def emit_replenished(
    tx: Tx,
    changes: Iterable[tuple[PositionKey, Mapping[str, int]]],
    reason: str,
    *,
    causation: Event | None = None,
) -> None:
    """One ``inventory.replenished`` for the skus whose ATP the transaction's
    ``changes`` raised at some location, if any (decision 0030). Netted per sku and
    location, so a change that lowers on_hand with what it held (a shipment, a scrap)
    or moves units between deductions (a hold converted) raises nothing. Never on the
    allocation paths: an allocation only lowers ATP."""
    net: dict[tuple[str, str], int] = {}
    for key, deltas in changes:
        at = (key.sku, key.location_id)
        net[at] = net.get(at, 0) + deltas.get("on_hand", 0)
        net[at] -= sum(deltas.get(bucket, 0) for bucket in ATP_DEDUCTIONS)
    skus = sorted({sku for (sku, _), rise in net.items() if rise > 0})
    if not skus:
        return
    event = new_event(
        source=SOURCE,
        type_="inventory.replenished",
        subject=f"replenished:{skus[0]}",
        sequence=1,  # consumers take it unordered: a hint to look again, not a state
        payload=InventoryReplenished(skus=skus, reason=reason),
        causation=causation,
    )
    tx.emit(STREAM_AVAILABILITY, event)


def buckets_of(row: Any) -> dict[str, int]:
    return {bucket: int(getattr(row, bucket)) for bucket in BUCKETS}


async def ensure(conn: AsyncConnection, key: PositionKey, now: datetime) -> None:
    """Create the position with every bucket at zero unless it exists."""
    touched.note(conn, (key.sku,))
    params = {"at_sku": key.sku, "at_location": key.location_id, "at_lot": key.lot, "now": now}
    await conn.execute(_ensure_statement(conn.dialect.name), params)


@cache
def _ensure_statement(dialect: str) -> Any:
    dialect_insert: Any = sqlite_insert if dialect == "sqlite" else pg_insert
    return (
        dialect_insert(positions)
        .values(
            sku=bindparam("at_sku"),
            location_id=bindparam("at_location"),
            lot=bindparam("at_lot"),
            updated_at=bindparam("now"),
            version=0,
            **dict.fromkeys(BUCKETS, 0),
        )
        .on_conflict_do_nothing()
    )


async def change(
    conn: AsyncConnection,
    key: PositionKey,
    deltas: dict[str, int],
    cause: Cause,
    *,
    now: datetime,
    require_atp: int | None = None,
    expect: Mapping[str, int] | None = None,
) -> bool:
    """Apply ``deltas`` to one position and write its ledger row. Returns False, having
    changed nothing, when the position is missing, a bucket would go negative, its
    ATP (holds lapsed by ``now`` not deducted) is below ``require_atp``, or a bucket
    named in ``expect`` does not hold exactly the expected value (compare-and-set)."""
    deltas = {bucket: d for bucket, d in deltas.items() if d}
    if not deltas:
        return True
    unknown = (set(deltas) | set(expect or {})) - set(BUCKETS)
    if unknown:
        raise ValueError(f"unknown buckets {sorted(unknown)}")
    touched.note(conn, (key.sku,))
    shape = tuple(sorted((bucket, d < 0) for bucket, d in deltas.items()))
    expected = tuple(sorted(expect or {}))
    params: dict[str, Any] = {f"d_{b}": d for b, d in deltas.items()}
    params |= {"at_sku": key.sku, "at_location": key.location_id, "at_lot": key.lot}
    params |= {"changes": 1, "now": now}
    if require_atp is not None:
        params["need"] = require_atp
    for bucket in expected:
        params[f"expect_{bucket}"] = (expect or {})[bucket]
    stmt = _one_update(shape, require_atp is not None, expected)
    if (await conn.execute(stmt, params)).rowcount != 1:
        return False
    await _LEDGER(
        conn,
        [
            {
                "sku": key.sku,
                "location_id": key.location_id,
                "lot": key.lot,
                "reason": cause.reason,
                "source": cause.source,
                "reference": cause.reference,
                "idempotency_key": cause.idempotency_key,
                "created_at": now,
                **_NO_DELTAS,
                **{delta_column(b): d for b, d in deltas.items()},
            }
        ],
    )
    return True


@dataclass(frozen=True, slots=True)
class Change:
    """One position change of a batch: its deltas and why (one ledger row)."""

    key: PositionKey
    deltas: dict[str, int]
    cause: Cause


async def change_many(
    conn: AsyncConnection,
    changes: Sequence[Change],
    *,
    now: datetime,
    require_atp: str | None = None,
) -> bool:
    """Apply many changes at once: one guarded UPDATE per position with the sum of its
    deltas, then one ledger row per change in a single multi-row INSERT. With
    ``require_atp`` naming a bucket, each position's ATP (holds lapsed by ``now`` not
    deducted) must cover the sum of that bucket's increases there. Returns False when a
    guard refuses a position: the positions before it are changed already, so the
    caller must roll the transaction back."""
    totals: dict[PositionKey, dict[str, int]] = {}
    counts: dict[PositionKey, int] = {}
    touched.note(conn, {item.key.sku for item in changes})
    for item in changes:
        total = totals.setdefault(item.key, {})
        for bucket, d in item.deltas.items():
            total[bucket] = total.get(bucket, 0) + d
        counts[item.key] = counts.get(item.key, 0) + 1
    for key in sorted(totals):
        deltas = {bucket: d for bucket, d in totals[key].items() if d}
        unknown = set(deltas) - set(BUCKETS)
        if unknown:
            raise ValueError(f"unknown buckets {sorted(unknown)}")
        guarded = require_atp if require_atp and deltas.get(require_atp, 0) > 0 else None
        shape = tuple(sorted((bucket, d < 0) for bucket, d in deltas.items()))
        params: dict[str, Any] = {f"d_{b}": d for b, d in deltas.items()}
        params |= {"at_sku": key.sku, "at_location": key.location_id, "at_lot": key.lot}
        params |= {"changes": counts[key], "now": now}
        if guarded is not None:
            params["need"] = deltas[guarded]
        if (await conn.execute(_guarded_update(shape, guarded), params)).rowcount != 1:
            return False
    await _LEDGER(
        conn,
        [
            {
                "sku": item.key.sku,
                "location_id": item.key.location_id,
                "lot": item.key.lot,
                "reason": item.cause.reason,
                "source": item.cause.source,
                "reference": item.cause.reference,
                "idempotency_key": item.cause.idempotency_key,
                "created_at": now,
                **_NO_DELTAS,
                **{delta_column(b): d for b, d in item.deltas.items()},
            }
            for item in changes
        ],
    )
    return True


# Every delta column in every row: a row missing one takes BulkInsert's slow path.
_NO_DELTAS = {delta_column(b): 0 for b in BUCKETS}
_LEDGER = BulkInsert(
    movements,
    [
        "sku",
        "location_id",
        "lot",
        "reason",
        "source",
        "reference",
        "idempotency_key",
        "created_at",
        *(delta_column(b) for b in BUCKETS),
    ],
)


@cache
def _guarded_update(shape: tuple[tuple[str, bool], ...], require_atp: str | None) -> Update:
    """``change_many``'s UPDATE of one position for deltas of ``shape`` (bucket, is it
    a decrease), built once with bind parameters so SQLAlchemy's statement cache key
    is computed once too."""
    stmt = (
        update(positions)
        .where(
            positions.c.sku == bindparam("at_sku"),
            positions.c.location_id == bindparam("at_location"),
            positions.c.lot == bindparam("at_lot"),
        )
        .values(
            {positions.c[b]: positions.c[b] + bindparam(f"d_{b}") for b, _ in shape}
            | {
                positions.c.version: positions.c.version + bindparam("changes"),
                positions.c.updated_at: bindparam("now"),
            }
        )
    )
    for bucket, decrease in shape:
        if decrease:
            delta = bindparam(f"d_{bucket}", type_=positions.c[bucket].type)
            stmt = stmt.where(positions.c[bucket] + delta >= 0)
    if require_atp is not None:
        now = bindparam("now", type_=positions.c.updated_at.type)
        stmt = stmt.where(active_atp_expression(now) >= bindparam("need"))
    return stmt


@cache
def _one_update(
    shape: tuple[tuple[str, bool], ...], require_atp: bool, expected: tuple[str, ...]
) -> Update:
    """``change``'s UPDATE: ``change_many``'s, plus a compare-and-set on ``expected``
    buckets (bind parameters ``expect_{bucket}``), built once per shape."""
    stmt = _guarded_update(shape, "atp" if require_atp else None)
    for bucket in expected:
        stmt = stmt.where(positions.c[bucket] == bindparam(f"expect_{bucket}"))
    return stmt


def _lapsed_query(one_location: bool) -> Any:
    query = (
        select(
            hold_lines.c.sku,
            hold_lines.c.location_id,
            hold_lines.c.lot,
            func.sum(hold_lines.c.quantity).label("lapsed"),
        )
        .where(
            hold_lines.c.sku.in_(bindparam("skus", expanding=True)),
            hold_lines.c.active == 1,
            hold_lines.c.expires_at <= bindparam("now", type_=hold_lines.c.expires_at.type),
        )
        .group_by(hold_lines.c.sku, hold_lines.c.location_id, hold_lines.c.lot)
    )
    if one_location:
        query = query.where(hold_lines.c.location_id == bindparam("location_id"))
    return query


def _locked_query(one_location: bool) -> Any:
    query = (
        select(positions)
        .where(positions.c.sku.in_(bindparam("skus", expanding=True)))
        .order_by(positions.c.sku, positions.c.location_id, positions.c.lot)
        .with_for_update()
    )
    if one_location:
        query = query.where(positions.c.location_id == bindparam("location_id"))
    return query


# Built once, with bind parameters: a statement built per call costs SQLAlchemy more
# than running it (its cache key is computed from the whole statement every time).
_LAPSED = {False: _lapsed_query(False), True: _lapsed_query(True)}
_LOCKED = {False: _locked_query(False), True: _locked_query(True)}


async def lapsed_by_position(
    conn: AsyncConnection, skus: list[str], now: datetime, location_id: str | None = None
) -> dict[PositionKey, int]:
    """Reserved units of holds lapsed by ``now`` (not yet swept), per position."""
    params = {"skus": sorted(set(skus)), "now": now, "location_id": location_id}
    rows = await conn.execute(_LAPSED[location_id is not None], params)
    return {PositionKey(r.sku, r.location_id, r.lot): int(r.lapsed) for r in rows}


_ROWS_OF = select(positions).where(positions.c.sku.in_(bindparam("skus", expanding=True)))


async def rows_of(conn: AsyncConnection, skus: list[str]) -> list[Any]:
    """The positions of ``skus``, without locks."""
    return list((await conn.execute(_ROWS_OF, {"skus": sorted(set(skus))})).all())


async def locked_rows(
    conn: AsyncConnection, skus: list[str], location_id: str | None = None
) -> list[Any]:
    """The positions of ``skus``, row-locked in (sku, location_id, lot) order so two
    writers never wait on each other in opposite orders. On SQLite FOR UPDATE renders
    as nothing: the transaction already holds the database's write lock."""
    params = {"skus": sorted(set(skus)), "location_id": location_id}
    return list((await conn.execute(_LOCKED[location_id is not None], params)).all())


Buckets = dict[PositionKey, dict[str, int]]


async def snapshot(conn: AsyncConnection) -> Buckets:
    """Every position's buckets as stored."""
    rows = await conn.execute(select(positions))
    return {PositionKey(r.sku, r.location_id, r.lot): buckets_of(r) for r in rows}


async def rebuild(conn: AsyncConnection) -> Buckets:
    """Every position's buckets as the ledger says: the sum of its movements."""
    rows = await conn.execute(
        select(
            movements.c.sku,
            movements.c.location_id,
            movements.c.lot,
            *(func.sum(movements.c[delta_column(b)]).label(b) for b in BUCKETS),
        ).group_by(movements.c.sku, movements.c.location_id, movements.c.lot)
    )
    return {PositionKey(r.sku, r.location_id, r.lot): buckets_of(r) for r in rows}


async def drift(conn: AsyncConnection) -> dict[PositionKey, tuple[dict[str, int], dict[str, int]]]:
    """Positions whose stored buckets differ from the ledger: key -> (stored, rebuilt)."""
    stored, rebuilt = await snapshot(conn), await rebuild(conn)
    zero = dict.fromkeys(BUCKETS, 0)
    return {
        key: (stored.get(key, zero), rebuilt.get(key, zero))
        for key in stored.keys() | rebuilt.keys()
        if stored.get(key, zero) != rebuilt.get(key, zero)
    }
