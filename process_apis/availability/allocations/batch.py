"""Allocating a batch of orders in one pass (group commit, decision 0009).

The batch's positions are locked once; every order is planned, in arrival order, on
that one locked book in memory, under its channel's strategy and rules, each order
seeing what the orders before it took. Then the writes go out together: one guarded
UPDATE per position with the batch's total (its SQL guard re-checks ATP, so a wrong
plan fails the batch instead of overselling), and the ledger, headers, demands, claims
and outbox rows as one multi-row statement each. Answers are built from what was
written, not re-read.

An order's refusal (``reject`` short of stock, a duplicate order id) is decided in
memory, before anything is written, and leaves the rest of the batch alone. Any
database failure fails the whole batch; the batcher then replays its requests one per
transaction (``service.allocate``), so a failure stays the failing request's own.

``plan_many`` plans on the locked book (``allocate_many``) or, for a batch planned
ahead of the writer's turn (decision 0020), on a snapshot: such a plan is written only
when ``Planned.settled`` (every order allocated in full, no channel rule, no map) and
``still_planned_alike`` hold, and its guarded UPDATEs then refuse it (``StaleStock``)
if the stock it counted on is gone."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection

from process_apis.availability import clock
from process_apis.availability.allocations import repository as repo
from process_apis.availability.allocations.planner import Geography, Strategy, plan_allocation
from process_apis.availability.allocations.service import (
    emit_allocated,
    insufficient_stock,
    shortfalls,
)
from process_apis.availability.db import (
    allocation_demands,
    allocation_groups,
    allocation_lines,
    allocations,
)
from process_apis.availability.positions.book import PositionBook
from process_apis.availability.positions.ledger import SOURCE, Cause, Change, change_many
from process_apis.availability.refusals import DuplicateAllocation
from process_apis.availability.rules.allowance import (
    Buyer,
    Terms,
    channel_view,
    eligible_available,
    load_terms,
    rules_of,
)
from process_apis.availability.schemas import (
    Allocation,
    AllocationIn,
    AllocationLine,
    AllocationStatus,
    LocationClaim,
)
from process_apis.availability.strategies.repository import geography, strategies_of
from shared.bulk import BulkInsert
from shared.db import Tx
from shared.refusals import Refusal

Outcome = Allocation | Refusal

_HEADERS = BulkInsert(
    allocations,
    [
        "allocation_id",
        "order_id",
        "channel",
        "policy",
        "status",
        "version",
        "created_at",
        "updated_at",
        "customer_id",
    ],
)
_DEMANDS = BulkInsert(allocation_demands, ["allocation_id", "line_no", "sku", "quantity"])
_CLAIMS = BulkInsert(
    allocation_lines,
    [
        "allocation_id",
        "line_no",
        "location_id",
        "order_id",
        "sku",
        "quantity",
        "shipped",
        "released",
    ],
)
_GROUPS = BulkInsert(allocation_groups, ["allocation_id", "customer_group"])
_EXISTING = select(allocations.c.allocation_id).where(
    allocations.c.allocation_id.in_(bindparam("order_ids", expanding=True))
)


@dataclass(slots=True)
class _Writes:
    """Rows of the batch's successful orders, written together at the end."""

    headers: list[dict[str, object]] = field(default_factory=list)
    demands: list[dict[str, object]] = field(default_factory=list)
    claims: list[dict[str, object]] = field(default_factory=list)
    groups: list[dict[str, object]] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    emitted: list[tuple[Allocation, repo.Claims]] = field(default_factory=list)


@dataclass(slots=True)
class Planned:
    """A batch planned on a book: its outcomes, the rows to write, and what the plan
    assumed of the configuration (checked again before an optimistic write)."""

    outcomes: list[Outcome]
    writes: _Writes
    now: datetime
    skus: list[str]
    strategies: dict[str, Strategy]
    # Every order was allocated in full (or refused as a duplicate), no sku has channel
    # rules and no strategy needed the map: a plan made on a snapshot is then safe to
    # write later, the guarded UPDATE re-checking the stock (``write_planned``).
    settled: bool


class StaleStock(RuntimeError):
    """A guarded UPDATE refused a planned allocation: the positions changed."""


async def allocate_many(tx: Tx, requests: Sequence[tuple[AllocationIn, str]]) -> list[Outcome]:
    """Allocate each (order, idempotency key) of ``requests`` in the caller's transaction;
    one outcome per request, in order: the allocation, or the problem refusing it."""
    planned = await plan_many(tx.conn, requests, locked=True)
    await write_planned(tx, planned)
    return planned.outcomes


async def plan_many(
    conn: AsyncConnection, requests: Sequence[tuple[AllocationIn, str]], *, locked: bool
) -> Planned:
    """Plans the batch on the positions as read on ``conn``: locked (the write
    transaction's own view, the plan is final) or not (a snapshot: see ``settled``)."""
    now = clock.now()
    taken = await _existing_orders(conn, [data.order_id for data, _ in requests])
    skus = sorted({line.sku for data, _ in requests for line in data.lines})
    if locked:
        book = await PositionBook.lock(conn, skus, now=now)
    else:
        book = await PositionBook.read(conn, skus, now)
    channels = sorted({data.channel for data, _ in requests})
    strategies = await strategies_of(conn, channels)
    needs_map = any(
        strategies[data.channel].ranking == "nearest" and data.ship_to for data, _ in requests
    )
    places = await geography(conn) if needs_map else None
    terms = await load_terms(conn, book, skus, now)

    writes = _Writes()
    outcomes: list[Outcome] = []
    settled = not terms and not needs_map
    for data, key in requests:
        if data.order_id in taken:
            outcomes.append(DuplicateAllocation(f"Order {data.order_id} is already allocated."))
            continue
        outcome = _plan_one(book, terms, strategies[data.channel], places, data, key, now, writes)
        if isinstance(outcome, Allocation):
            taken.add(data.order_id)
        settled = settled and isinstance(outcome, Allocation) and outcome.status == "allocated"
        outcomes.append(outcome)
    return Planned(outcomes, writes, now, skus, strategies, settled)


async def still_planned_alike(conn: AsyncConnection, planned: Planned) -> bool:
    """Whether the configuration a snapshot plan assumed still holds: the channels'
    strategies unchanged, and still no channel rule on the batch's skus."""
    if await rules_of(conn, planned.skus):
        return False
    return await strategies_of(conn, sorted(planned.strategies)) == planned.strategies


async def write_planned(tx: Tx, planned: Planned) -> None:
    """Writes the plan's rows; ``StaleStock`` (nothing to keep: roll back) when a
    position no longer covers what the plan takes from it."""
    writes = planned.writes
    if writes.headers:
        await _write(tx.conn, writes, planned.now)
        for result, claims in writes.emitted:
            emit_allocated(tx, result, claims)


async def _existing_orders(conn: AsyncConnection, order_ids: list[str]) -> set[str]:
    rows = await conn.execute(_EXISTING, {"order_ids": sorted(set(order_ids))})
    return {row.allocation_id for row in rows}


def _plan_one(
    book: PositionBook,
    terms: dict[str, Terms],
    strategy: Strategy,
    places: Geography | None,
    data: AllocationIn,
    key: str,
    now: datetime,
    writes: _Writes,
) -> Outcome:
    """Plan one order on the book, and on success take its units from the book and the
    channel terms (so the next order sees them gone) and queue its rows."""
    buyer = Buyer(data.channel, data.customer_group)
    skus = {line.sku for line in data.lines}
    limits = {
        sku: channel_view(eligible_available(book, sku, strategy.eligible), terms[sku], buyer)[0]
        for sku in skus
        if sku in terms
    }
    ship_to = data.ship_to
    plan = plan_allocation(
        book,
        data.lines,
        strategy,
        limits=limits,
        ship_to=ship_to,
        geography=places if strategy.ranking == "nearest" and ship_to else None,
    )
    short = shortfalls(data.lines, plan)
    if short and data.policy == "reject":
        return insufficient_stock(short)
    if short and data.policy == "ship_complete":
        plan = [[] for _ in plan]

    allocation_id = data.order_id
    cause = Cause("allocation", SOURCE, allocation_id, key)
    claims: repo.Claims = {}
    for line_no, takes in enumerate(plan, start=1):
        for position, quantity in takes:
            book.values[position]["allocated"] += quantity
            writes.changes.append(Change(position, {"allocated": quantity}, cause))
            _, before = claims.get((line_no, position.location_id), (position.sku, 0))
            claims[(line_no, position.location_id)] = (position.sku, before + quantity)
            if position.sku in terms:
                _use(terms[position.sku], buyer, quantity)

    result = _result(data, claims, now)
    writes.headers.append(
        {
            "allocation_id": allocation_id,
            "order_id": allocation_id,
            "channel": data.channel,
            "policy": data.policy,
            "status": result.status,
            "version": 1,
            "created_at": now,
            "updated_at": now,
            "customer_id": data.customer_id,
        }
    )
    writes.demands.extend(
        {"allocation_id": allocation_id, "line_no": n, "sku": line.sku, "quantity": line.quantity}
        for n, line in enumerate(data.lines, start=1)
    )
    writes.claims.extend(repo.claim_rows(allocation_id, claims))
    if data.customer_group is not None:
        writes.groups.append(
            {"allocation_id": allocation_id, "customer_group": data.customer_group}
        )
    writes.emitted.append((result, claims))
    return result


def _use(terms: Terms, buyer: Buyer, quantity: int) -> None:
    """Count ``quantity`` as used by the buyer's channel and group (fences and caps)."""
    used = terms.used
    used[("channel", buyer.channel)] = used.get(("channel", buyer.channel), 0) + quantity
    if buyer.customer_group is not None:
        group = ("group", buyer.customer_group)
        used[group] = used.get(group, 0) + quantity


def _result(data: AllocationIn, claims: repo.Claims, now: datetime) -> Allocation:
    """The allocation as ``repository.load`` would read it back after the commit."""
    by_line: dict[int, list[LocationClaim]] = {}
    for (line_no, location_id), (_, quantity) in sorted(claims.items()):
        by_line.setdefault(line_no, []).append(LocationClaim(location_id, quantity, 0, 0))
    lines = []
    for line_no, line in enumerate(data.lines, start=1):
        mine = by_line.get(line_no, [])
        allocated = sum(c.quantity for c in mine)
        lines.append(
            AllocationLine(
                sku=line.sku,
                quantity=line.quantity,
                allocated=allocated,
                backordered=line.quantity - allocated,
                shipped=0,
                released=0,
                locations=mine,
            )
        )
    requested = sum(line.quantity for line in data.lines)
    claimed = sum(quantity for _, quantity in claims.values())
    status: AllocationStatus = "allocated"
    if claimed < requested:
        status = "partially_allocated" if claimed else "backordered"
    return Allocation(
        allocation_id=data.order_id,
        order_id=data.order_id,
        channel=data.channel,
        policy=data.policy,
        status=status,
        version=1,
        lines=lines,
        created_at=now,
        updated_at=now,
        customer_group=data.customer_group,
        customer_id=data.customer_id,
    )


async def _write(conn: AsyncConnection, writes: _Writes, now: datetime) -> None:
    await _HEADERS(conn, writes.headers)
    await _DEMANDS(conn, writes.demands)
    await _CLAIMS(conn, writes.claims)
    await _GROUPS(conn, writes.groups)
    if writes.changes and not await change_many(
        conn, writes.changes, now=now, require_atp="allocated"
    ):
        raise StaleStock("a position no longer covers its planned allocations")
