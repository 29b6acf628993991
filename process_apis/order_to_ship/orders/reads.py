"""Orders as the API answers them: the head, every line quantity, shipments with their
delivery and delays, and the fulfillment orders the release queue created."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import select
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


async def get(conn: AsyncConnection, order_id: str) -> Order | None:
    found = await load(conn, select(orders).where(orders.c.order_id == order_id))
    return found[0] if found else None


async def page(
    conn: AsyncConnection, customer_id: str | None, after: str | None, limit: int
) -> list[Order]:
    query = select(orders).order_by(orders.c.order_id).limit(limit)
    if customer_id is not None:
        query = query.where(orders.c.customer_id == customer_id)
    if after:
        query = query.where(orders.c.order_id > after)
    return await load(conn, query)


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


async def load(conn: AsyncConnection, query: Any) -> list[Order]:
    heads = (await conn.execute(query)).all()
    ids = [head.order_id for head in heads]
    if not ids:
        return []
    lines: dict[str, list[Any]] = {i: [] for i in ids}
    for row in await conn.execute(
        select(order_lines)
        .where(order_lines.c.order_id.in_(ids))
        .order_by(order_lines.c.order_id, order_lines.c.line_no)
    ):
        lines[row.order_id].append(row)
    extras: dict[str, dict[str, Any]] = {
        i: {"shipments": [], "fulfillments": [], "pending": 0} for i in ids
    }
    for row in await conn.execute(
        select(order_shipments)
        .where(order_shipments.c.order_id.in_(ids))
        .order_by(order_shipments.c.shipped_at, order_shipments.c.shipment_id)
    ):
        extras[row.order_id]["shipments"].append(_shipment(row))
    for row in await conn.execute(
        select(order_releases)
        .where(order_releases.c.order_id.in_(ids))
        .order_by(order_releases.c.created_at, order_releases.c.release_id)
    ):
        if row.status == "sent":
            extras[row.order_id]["fulfillments"].append(
                FulfillmentRef(row.fulfillment_order_id, row.warehouse_id)
            )
        elif row.status in ("queued", "sending"):
            extras[row.order_id]["pending"] += 1
    return [_order(head, lines[head.order_id], extras[head.order_id]) for head in heads]


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
