"""Placing, releasing, expiring and converting holds. A hold raises ``reserved`` on
the positions it takes, under the same locks, rules and strategy as an allocation;
it stops counting the moment ``expires_at`` passes (see positions/ledger.py), and
the sweeper later writes that expiry to the ledger."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import uuid_utils

from process_apis.availability import clock
from process_apis.availability.allocations import repository as allocation_repo
from process_apis.availability.allocations.planner import planned
from process_apis.availability.allocations.service import emit_allocated, plan_under_rules
from process_apis.availability.holds import repository as repo
from process_apis.availability.holds.schemas import MAX_TTL_SECONDS, Hold, HoldConvertIn, HoldIn
from process_apis.availability.ownership import visible_to
from process_apis.availability.positions.book import PositionBook
from process_apis.availability.positions.ledger import (
    SOURCE,
    Cause,
    PositionKey,
    change,
    emit_replenished,
)
from process_apis.availability.rules.allowance import Buyer
from process_apis.availability.schemas import Allocation
from shared.db import Database, Tx
from shared.refusals import Refusal

log = logging.getLogger("tally.availability")


def expiry_of(data: HoldIn, now: datetime) -> datetime:
    if (data.expires_at is None) == (data.ttl_seconds is None):
        raise Refusal(422, "invalid-expiry", "Give exactly one of expires_at and ttl_seconds.")
    if data.ttl_seconds is not None:
        return now + timedelta(seconds=data.ttl_seconds)
    assert data.expires_at is not None
    if data.expires_at <= now:
        raise Refusal(422, "invalid-expiry", "expires_at is not in the future.")
    if data.expires_at > now + timedelta(seconds=MAX_TTL_SECONDS):
        raise Refusal(422, "invalid-expiry", "expires_at is more than 30 days ahead.")
    return data.expires_at


async def place(tx: Tx, data: HoldIn, idempotency_key: str) -> Hold:
    conn = tx.conn
    now = clock.now()
    hold_id = data.hold_id or f"HLD-{uuid_utils.uuid7()}"
    await repo.insert_header(
        conn,
        hold_id=hold_id,
        channel=data.channel,
        customer_id=data.customer_id,
        customer_group=data.customer_group,
        expires_at=expiry_of(data, now),
        now=now,
    )
    book = await PositionBook.lock(conn, [line.sku for line in data.lines], now=now)
    buyer = Buyer(data.channel, data.customer_group)
    plan = await plan_under_rules(conn, book, data.lines, buyer, data.ship_to, now)
    short = [
        {"sku": line.sku, "requested": line.quantity, "available": planned(takes)}
        for line, takes in zip(data.lines, plan, strict=True)
        if planned(takes) < line.quantity
    ]
    if short:
        raise Refusal(
            409,
            "insufficient-stock",
            "Not enough stock to hold every line; nothing was held.",
            extra={"errors": short},
        )
    cause = Cause("hold", SOURCE, hold_id, idempotency_key)
    held: repo.Held = {}
    for line_no, takes in enumerate(plan, start=1):
        for key, quantity in takes:
            if not await book.apply(
                conn, key, {"reserved": quantity}, cause, now=now, require_atp=quantity
            ):
                raise Refusal(
                    409, "insufficient-stock", "Stock changed while holding; nothing was held."
                )
            ident = (line_no, key.location_id, key.lot)
            held[ident] = (key.sku, held.get(ident, (key.sku, 0))[1] + quantity)
    head = await repo.locked_header(conn, hold_id)
    await repo.write_lines(conn, head, [(x.sku, x.quantity) for x in data.lines], held)
    return await _loaded(tx, hold_id, now)


async def _loaded(tx: Tx, hold_id: str, now: datetime) -> Hold:
    found = await repo.load(tx.conn, hold_id, now)
    assert found is not None
    return found


async def _give_back(tx: Tx, hold_id: str, reason: str, reference: str, now: datetime) -> None:
    """Lower ``reserved`` by every active line of the hold (its lines stay on record)."""
    lines = await repo.active_lines(tx.conn, hold_id)
    await PositionBook.lock(tx.conn, [line.sku for line in lines])
    cause = Cause(reason, SOURCE, reference)
    given: list[tuple[PositionKey, dict[str, int]]] = []
    for line in lines:
        key = PositionKey(line.sku, line.location_id, line.lot)
        if not await change(tx.conn, key, {"reserved": -int(line.quantity)}, cause, now=now):
            raise RuntimeError(f"position {key} lost the reserved units of hold {hold_id}")
        given.append((key, {"reserved": -int(line.quantity)}))
    emit_replenished(tx, given, reason)


def not_found(hold_id: str) -> Refusal:
    """Also the answer for another customer's hold (ADR 0014): the same body."""
    return Refusal(404, "hold-not-found", f"No hold {hold_id}.")


async def release(tx: Tx, hold_id: str, *, bound_to: str | None = None) -> Hold:
    """Ends the hold: ``released`` before ``expires_at``, ``expired`` from then on.
    Releasing an ended hold changes nothing. A caller bound to a customer
    (``bound_to``) releases that customer's only."""
    head = await repo.locked_header(tx.conn, hold_id)
    if head is None or not visible_to(bound_to, head.customer_id):
        raise not_found(hold_id)
    now = clock.now()
    if head.status == "active":
        lapsed = head.expires_at <= now
        reason, status = ("hold_expired", "expired") if lapsed else ("hold_released", "released")
        await _give_back(tx, hold_id, reason, hold_id, now)
        await repo.close(tx.conn, hold_id, status, now)
    return await _loaded(tx, hold_id, now)


async def convert(
    tx: Tx,
    hold_id: str,
    data: HoldConvertIn,
    idempotency_key: str,
    *,
    bound_to: str | None = None,
) -> Allocation:
    """The held units become the order's allocation in one step per position
    (reserved -q, allocated +q): ATP never moves, so nobody can take them between.
    The allocation is the hold's customer's; a caller bound to a customer
    (``bound_to``) converts that customer's holds only."""
    conn = tx.conn
    head = await repo.locked_header(conn, hold_id)
    if head is None or not visible_to(bound_to, head.customer_id):
        raise not_found(hold_id)
    now = clock.now()
    # Expired whether or not the sweeper has written the expiry yet: one answer.
    if head.status == "expired" or (head.status == "active" and head.expires_at <= now):
        raise Refusal(409, "hold-expired", f"Hold {hold_id} expired; its units are gone.")
    if head.status != "active":
        raise Refusal(409, "hold-not-active", f"Hold {hold_id} is {head.status}.")
    allocation_id = data.order_id
    await allocation_repo.insert_header(
        conn, allocation_id, head.channel, "reject", now, head.customer_id
    )
    lines = await repo.active_lines(conn, hold_id)
    await PositionBook.lock(conn, [line.sku for line in lines])
    cause = Cause("hold_converted", SOURCE, allocation_id, idempotency_key)
    claims: allocation_repo.Claims = {}
    for line in lines:
        key = PositionKey(line.sku, line.location_id, line.lot)
        quantity = int(line.quantity)
        if not await change(
            conn, key, {"reserved": -quantity, "allocated": quantity}, cause, now=now
        ):
            raise RuntimeError(f"position {key} lost the reserved units of hold {hold_id}")
        ident = (int(line.line_no), line.location_id)
        claims[ident] = (line.sku, claims.get(ident, (line.sku, 0))[1] + quantity)
    requested = await repo.requested_lines(conn, hold_id)
    await allocation_repo.write_claims(conn, allocation_id, requested, claims, head.customer_group)
    await repo.close(conn, hold_id, "converted", now, order_id=allocation_id)
    result = await allocation_repo.load(conn, allocation_id)
    assert result is not None
    emit_allocated(tx, result, claims)
    return result


async def sweep(db: Database, limit: int = 100) -> int:
    """Writes the expiry of holds whose time ran out (one transaction each); returns
    how many. Only bookkeeping: lapsed holds stopped counting when they lapsed."""
    async with db.read() as conn:
        due = await repo.lapsed_ids(conn, clock.now(), limit)
    for hold_id in due:
        async with db.transaction() as tx:
            await release(tx, hold_id)
    return len(due)
