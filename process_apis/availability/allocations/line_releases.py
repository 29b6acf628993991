"""Releasing part of an allocation's lines (decision 0030): allocated, unshipped units
given back to available-to-promise (a cancelled line, a short close, a short pick),
released or backordered again, and backordered units no longer wanted. All asked or
nothing: over a line's open claims or over its backorder is a 409 that changes
nothing."""

from __future__ import annotations

from typing import Any

from process_apis.availability import clock
from process_apis.availability.allocations import repository as repo
from process_apis.availability.allocations.fills import duplicate_skus, open_allocation
from process_apis.availability.allocations.schemas import LineReleaseIn, LineReleasesIn
from process_apis.availability.allocations.service import (
    Given,
    emit_released,
    give_back,
)
from process_apis.availability.positions.book import PositionBook
from process_apis.availability.positions.ledger import SOURCE, Cause, emit_replenished
from process_apis.availability.schemas import Allocation
from shared.db import Tx
from shared.events.catalog import LocatedLine
from shared.refusals import Refusal


def _excess(asked: list[LineReleaseIn], claims: list[Any], current: Allocation) -> None:
    """409 naming every line that asks more than it has open or backordered."""
    unsound = sorted(ask.sku for ask in asked if ask.backorder > ask.release)
    if unsound:
        raise Refusal(
            422,
            "backorder-exceeds-release",
            f"backorder is a part of release; more is asked for {', '.join(unsound)}.",
        )
    errors: list[dict[str, object]] = []
    for ask in asked:
        open_ = sum(int(c.open) for c in claims if c.sku == ask.sku)
        backordered = sum(x.backordered for x in current.lines if x.sku == ask.sku)
        if ask.release > open_:
            errors.append(
                {"sku": ask.sku, "field": "release", "requested": ask.release, "available": open_}
            )
        if ask.cancel_backordered > backordered:
            errors.append(
                {
                    "sku": ask.sku,
                    "field": "cancel_backordered",
                    "requested": ask.cancel_backordered,
                    "available": backordered,
                }
            )
    if errors:
        raise Refusal(
            409,
            "release-exceeds-line",
            "A line asks to release more than is open or backordered; nothing changed.",
            extra={"errors": errors},
        )


def _takes(claims: list[Any], ask: LineReleaseIn) -> list[tuple[Any, int]]:
    """The open claims ``ask.release`` comes from: at ``ask.location_id`` first, then
    in line and location order."""
    mine = sorted(
        (c for c in claims if c.sku == ask.sku),
        key=lambda c: (c.location_id != ask.location_id, c.line_no, c.location_id),
    )
    takes: list[tuple[Any, int]] = []
    left = ask.release
    for claim in mine:
        take = min(int(claim.open), left)
        if take:
            takes.append((claim, take))
            left -= take
    return takes


async def _cancel_backorders(tx: Tx, current: Allocation, ask: LineReleaseIn) -> None:
    left = ask.cancel_backordered
    for line_no, line in enumerate(current.lines, start=1):
        take = min(line.backordered, left) if line.sku == ask.sku else 0
        if take:
            await repo.lower_demand(tx.conn, current.allocation_id, line_no, take)
            left -= take


async def release_lines(
    tx: Tx,
    allocation_id: str,
    data: LineReleasesIn,
    idempotency_key: str,
    *,
    bound_to: str | None,
) -> Allocation:
    conn = tx.conn
    current = await open_allocation(conn, allocation_id, bound_to)
    duplicate_skus([ask.sku for ask in data.lines])
    claims = await repo.open_claims(conn, allocation_id)
    _excess(data.lines, claims, current)
    if not any(ask.release or ask.cancel_backordered for ask in data.lines):
        return current

    now = clock.now()
    cause = Cause("line_release", SOURCE, allocation_id, idempotency_key)
    book = await PositionBook.lock(conn, [ask.sku for ask in data.lines if ask.release])
    given: Given = []
    released: list[LocatedLine] = []
    for ask in sorted(data.lines, key=lambda x: x.sku):
        still_wanted = ask.backorder
        for claim, quantity in _takes(claims, ask):
            again = min(quantity, still_wanted)
            still_wanted -= again
            given += await give_back(conn, book, claim, quantity, cause, now, backorder=again)
            released.append(
                LocatedLine(sku=ask.sku, location_id=claim.location_id, quantity=quantity)
            )
        await _cancel_backorders(tx, current, ask)

    version = await repo.set_status(
        conn, allocation_id, await repo.settled_status(conn, allocation_id), now
    )
    if released:
        emit_released(tx, current, version, data.reason, released)
    emit_replenished(tx, given, data.reason)
    result = await repo.load(conn, allocation_id)
    assert result is not None
    return result
