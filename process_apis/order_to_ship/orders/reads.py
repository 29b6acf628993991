"""Orders as the API answers them: the head, every line quantity, shipments with their
delivery and delays, and the fulfillment orders the release queue created."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from process_apis.order_to_ship.db import (
    LINE_QUANTITIES,
    order_lines,
    order_releases,
    order_shipments,
    orders,
)
from process_apis.order_to_ship.orders.repository import NewOrder, Working
from process_apis.order_to_ship.orders.schemas import (
    CreditCheck,
    FulfillmentRef,
    Order,
    OrderLine,
    OrderShipment,
    ShipmentLine,
    ShipTo,
)
from shared.models import Money

# Built once (decision 0043): every read of orders runs these.
_HEAD = select(orders).where(orders.c.order_id == bindparam("at_order"))
_IDS: Any = bindparam("ids", expanding=True)
_LINES = (
    select(order_lines)
    .where(order_lines.c.order_id.in_(_IDS))
    .order_by(order_lines.c.order_id, order_lines.c.line_no)
)
_SHIPMENTS = (
    select(order_shipments)
    .where(order_shipments.c.order_id.in_(_IDS))
    .order_by(order_shipments.c.shipped_at, order_shipments.c.shipment_id)
)
_RELEASES = (
    select(order_releases)
    .where(order_releases.c.order_id.in_(_IDS))
    .order_by(order_releases.c.created_at, order_releases.c.release_id)
)


async def get(conn: AsyncConnection, order_id: str) -> Order | None:
    found = await load(conn, _HEAD, {"at_order": order_id})
    return found[0] if found else None


@dataclass(frozen=True)
class OrderFilter:
    """What a list of orders is narrowed to (every one given must hold)."""

    customer_id: str | None = None
    order_ids: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    placed_from: datetime | None = None  # created_at >= placed_from
    placed_to: datetime | None = None  # created_at < placed_to
    sku: str | None = None  # the order has a line of it
    channel: str | None = None

    def where(self) -> list[Any]:
        c = orders.c
        clauses: list[Any] = []
        if self.customer_id is not None:
            clauses.append(c.customer_id == self.customer_id)
        if self.order_ids:
            clauses.append(c.order_id.in_(sorted(set(self.order_ids))))
        if self.statuses:
            clauses.append(c.status.in_(sorted(set(self.statuses))))
        if self.placed_from is not None:
            clauses.append(c.created_at >= self.placed_from)
        if self.placed_to is not None:
            clauses.append(c.created_at < self.placed_to)
        if self.channel is not None:
            clauses.append(c.channel == self.channel)
        if self.sku is not None:
            clauses.append(
                c.order_id.in_(select(order_lines.c.order_id).where(order_lines.c.sku == self.sku))
            )
        return clauses


async def page(
    conn: AsyncConnection, where: OrderFilter, after: str | None, limit: int
) -> list[Order]:
    query = select(orders).where(*where.where()).order_by(orders.c.order_id).limit(limit)
    if after:
        query = query.where(orders.c.order_id > after)
    return await load(conn, query)


async def count(conn: AsyncConnection, where: OrderFilter) -> int:
    found = await conn.scalar(select(func.count()).select_from(orders).where(*where.where()))
    return int(found or 0)


async def visible_ids(
    conn: AsyncConnection, order_ids: list[str], customer_id: str | None
) -> list[str]:
    """Those of ``order_ids`` that exist (and are ``customer_id``'s, when given), sorted."""
    query = select(orders.c.order_id).where(orders.c.order_id.in_(sorted(set(order_ids))))
    if customer_id is not None:
        query = query.where(orders.c.customer_id == customer_id)
    return sorted(str(row.order_id) for row in await conn.execute(query))


def _shipment(row: Any) -> OrderShipment:
    return OrderShipment(
        shipment_id=row.shipment_id,
        fulfillment_order_id=row.fulfillment_order_id,
        warehouse_id=row.warehouse_id,
        carrier=row.carrier,
        tracking_number=row.tracking_number,
        lines=[ShipmentLine(line["sku"], line["quantity"]) for line in row.lines],
        shipped_at=row.shipped_at,
        delivered_at=row.delivered_at,
        promised_date=row.promised_date,
        delay_reason=row.delay_reason,
    )


def _line(row: Any, currency: str) -> OrderLine:
    return OrderLine(
        sku=row.sku,
        quantity=row.quantity,
        unit_price=Money(row.unit_price_minor, currency),
        **{name: int(getattr(row, name)) for name in LINE_QUANTITIES},
    )


def _order(head: Any, lines: list[Any], extras: dict[str, Any]) -> Order:
    return Order(
        order_id=head.order_id,
        status=head.status,
        customer_id=head.customer_id,
        channel=head.channel,
        policy=head.policy,
        currency=head.currency,
        lines=[_line(line, head.currency) for line in lines],
        shipments=extras["shipments"],
        fulfillment_orders=extras["fulfillments"],
        version=head.version,
        created_at=head.created_at,
        updated_at=head.updated_at,
        ship_to=msgspec.convert(head.ship_to, ShipTo) if head.ship_to else None,
        customer_group=head.customer_group,
        hold_id=head.hold_id,
        hold_reason=head.hold_reason,
        credit=msgspec.convert(head.credit, CreditCheck) if head.credit else None,
        releases_pending=extras["pending"],
    )


async def load(
    conn: AsyncConnection, query: Any, params: dict[str, Any] | None = None
) -> list[Order]:
    heads = (await conn.execute(query, params)).all()
    ids = {"ids": [head.order_id for head in heads]}
    if not ids["ids"]:
        return []
    lines: dict[str, list[Any]] = {i: [] for i in ids["ids"]}
    for row in await conn.execute(_LINES, ids):
        lines[row.order_id].append(row)
    extras: dict[str, dict[str, Any]] = {
        i: {"shipments": [], "fulfillments": [], "pending": 0} for i in ids["ids"]
    }
    for row in await conn.execute(_SHIPMENTS, ids):
        extras[row.order_id]["shipments"].append(_shipment(row))
    for row in await conn.execute(_RELEASES, ids):
        if row.status == "sent":
            extras[row.order_id]["fulfillments"].append(
                FulfillmentRef(row.fulfillment_order_id, row.warehouse_id)
            )
        elif row.status in ("queued", "sending"):
            extras[row.order_id]["pending"] += 1
    return [_order(head, lines[head.order_id], extras[head.order_id]) for head in heads]


async def stalled(conn: AsyncConnection, before: datetime, limit: int = 100) -> list[Order]:
    """Orders ``pending`` since before ``before`` (the saga stopped short of settling
    them), by order id."""
    return await load(
        conn,
        select(orders)
        .where(orders.c.status == "pending", orders.c.created_at < before)
        .order_by(orders.c.order_id)
        .limit(limit),
    )


def as_saved(working: Working, releases_pending: int) -> Order:
    """The order as ``repository.save`` just wrote it, before anything shipped (the
    placement's answer, without reading it back)."""
    head = working.head
    assert working.saved_at is not None
    return Order(
        order_id=working.order_id,
        status=working.status,  # type: ignore[arg-type]
        customer_id=head.customer_id,
        channel=head.channel,
        policy=head.policy,
        currency=head.currency,
        lines=[
            OrderLine(
                sku=sku,
                quantity=line.ordered,
                unit_price=Money(working.prices[sku], head.currency),
                **{name: getattr(line, name) for name in LINE_QUANTITIES},
            )
            for sku, line in working.lines.items()
        ],
        shipments=[],
        fulfillment_orders=[],
        version=int(head.version) + 1,
        created_at=head.created_at,
        updated_at=working.saved_at,
        ship_to=msgspec.convert(head.ship_to, ShipTo) if head.ship_to else None,
        customer_group=head.customer_group,
        hold_id=head.hold_id,
        hold_reason=head.hold_reason,
        credit=msgspec.convert(head.credit, CreditCheck) if head.credit else None,
        releases_pending=releases_pending,
    )


def as_placed(new: NewOrder, created_at: datetime) -> Order:
    """The order as ``repository.insert_pending`` just wrote it."""
    zero = dict.fromkeys(LINE_QUANTITIES, 0)
    return Order(
        order_id=new.order_id,
        status="pending",
        customer_id=new.customer_id,
        channel=new.channel,
        policy=new.policy,  # type: ignore[arg-type]
        currency=new.currency,
        lines=[
            OrderLine(sku=sku, quantity=quantity, unit_price=Money(price, new.currency), **zero)
            for sku, quantity, price in new.lines
        ],
        shipments=[],
        fulfillment_orders=[],
        version=0,
        created_at=created_at,
        updated_at=created_at,
        ship_to=msgspec.convert(new.ship_to, ShipTo) if new.ship_to else None,
        customer_group=new.customer_group,
        hold_id=new.hold_id,
        hold_reason="credit" if new.on_hold else None,
        credit=msgspec.convert(new.credit, CreditCheck) if new.credit else None,
        releases_pending=0,
    )
