"""SQL for orders (SQLAlchemy Core). Every write is conditional on the state it expects,
so a resumed saga, a cancel and a shipment event never overwrite each other."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from process_apis.order_to_ship.db import order_fulfillments, order_lines, order_shipments, orders
from process_apis.order_to_ship.orders.schemas import (
    FulfillmentRef,
    Order,
    OrderLine,
    OrderShipment,
    ShipmentLine,
)
from shared.models import Money


async def insert_pending(
    conn: AsyncConnection,
    *,
    order_id: str,
    customer_id: str,
    channel: str,
    policy: str,
    currency: str,
    lines: Sequence[tuple[str, int, int]],  # (sku, quantity, unit_price_minor)
    client_id: str,
    idempotency_key: str,
) -> None:
    now = datetime.now(UTC)
    await conn.execute(
        insert(orders).values(
            order_id=order_id,
            customer_id=customer_id,
            channel=channel,
            policy=policy,
            currency=currency,
            status="pending",
            version=0,
            client_id=client_id,
            idempotency_key=idempotency_key,
            created_at=now,
            updated_at=now,
        )
    )
    await conn.execute(
        insert(order_lines),
        [
            {
                "order_id": order_id,
                "line_no": n,
                "sku": sku,
                "quantity": quantity,
                "unit_price_minor": price,
                "allocated": 0,
                "backordered": 0,
                "shipped": 0,
            }
            for n, (sku, quantity, price) in enumerate(lines, start=1)
        ],
    )


async def delete_pending(conn: AsyncConnection, order_id: str) -> bool:
    """Removes an order that never got past ``pending`` (a compensated saga)."""
    head = await conn.execute(
        select(orders.c.order_id).where(orders.c.order_id == order_id, orders.c.status == "pending")
    )
    if head.first() is None:
        return False
    await conn.execute(delete(order_lines).where(order_lines.c.order_id == order_id))
    await conn.execute(delete(orders).where(orders.c.order_id == order_id))
    return True


async def release(
    conn: AsyncConnection,
    order_id: str,
    *,
    status: str,
    quantities: Mapping[str, tuple[int, int]],  # sku -> (allocated, backordered)
    fulfillments: Sequence[FulfillmentRef],
) -> bool:
    """``pending`` -> ``released``/``backordered``; False if someone else got there first."""
    moved = await conn.execute(
        update(orders)
        .where(orders.c.order_id == order_id, orders.c.status == "pending")
        .values(status=status, version=orders.c.version + 1, updated_at=datetime.now(UTC))
    )
    if moved.rowcount != 1:
        return False
    for sku, (allocated, backordered) in quantities.items():
        await conn.execute(
            update(order_lines)
            .where(order_lines.c.order_id == order_id, order_lines.c.sku == sku)
            .values(allocated=allocated, backordered=backordered)
        )
    if fulfillments:
        await conn.execute(
            insert(order_fulfillments),
            [
                {
                    "order_id": order_id,
                    "warehouse_id": fo.warehouse_id,
                    "fulfillment_order_id": fo.fulfillment_order_id,
                }
                for fo in fulfillments
            ],
        )
    return True


async def cancel(conn: AsyncConnection, order_id: str, expected_version: int) -> bool:
    moved = await conn.execute(
        update(orders)
        .where(orders.c.order_id == order_id, orders.c.version == expected_version)
        .values(status="cancelled", version=orders.c.version + 1, updated_at=datetime.now(UTC))
    )
    if moved.rowcount != 1:
        return False
    await conn.execute(
        update(order_lines)
        .where(order_lines.c.order_id == order_id)
        .values(allocated=0, backordered=0)
    )
    return True


async def add_shipment(
    conn: AsyncConnection,
    *,
    order_id: str,
    shipment_id: str,
    fulfillment_order_id: str,
    warehouse_id: str,
    carrier: str,
    tracking_number: str,
    lines: Sequence[tuple[str, int]],
    shipped_at: datetime,
) -> bool:
    """Records a shipment and raises ``shipped`` per line; False if already recorded."""
    known = await conn.scalar(
        select(order_shipments.c.shipment_id).where(order_shipments.c.shipment_id == shipment_id)
    )
    if known is not None:
        return False
    await conn.execute(
        insert(order_shipments).values(
            shipment_id=shipment_id,
            order_id=order_id,
            fulfillment_order_id=fulfillment_order_id,
            warehouse_id=warehouse_id,
            carrier=carrier,
            tracking_number=tracking_number,
            lines=[{"sku": sku, "quantity": quantity} for sku, quantity in lines],
            shipped_at=shipped_at,
        )
    )
    for sku, quantity in lines:
        await conn.execute(
            update(order_lines)
            .where(order_lines.c.order_id == order_id, order_lines.c.sku == sku)
            .values(shipped=order_lines.c.shipped + quantity)
        )
    return True


async def set_status(conn: AsyncConnection, order_id: str, status: str) -> None:
    await conn.execute(
        update(orders)
        .where(orders.c.order_id == order_id)
        .values(status=status, version=orders.c.version + 1, updated_at=datetime.now(UTC))
    )


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


async def stalled(conn: AsyncConnection, before: datetime, limit: int = 50) -> list[str]:
    rows = await conn.execute(
        select(orders.c.order_id)
        .where(orders.c.status == "pending", orders.c.created_at < before)
        .order_by(orders.c.order_id)
        .limit(limit)
    )
    return [row.order_id for row in rows]


async def get(conn: AsyncConnection, order_id: str) -> Order | None:
    found = await _load(conn, select(orders).where(orders.c.order_id == order_id))
    return found[0] if found else None


async def page(
    conn: AsyncConnection, customer_id: str | None, after: str | None, limit: int
) -> list[Order]:
    query = select(orders).order_by(orders.c.order_id).limit(limit)
    if customer_id is not None:
        query = query.where(orders.c.customer_id == customer_id)
    if after:
        query = query.where(orders.c.order_id > after)
    return await _load(conn, query)


async def _load(conn: AsyncConnection, query: Any) -> list[Order]:
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
    shipments: dict[str, list[OrderShipment]] = {i: [] for i in ids}
    for row in await conn.execute(
        select(order_shipments)
        .where(order_shipments.c.order_id.in_(ids))
        .order_by(order_shipments.c.shipped_at, order_shipments.c.shipment_id)
    ):
        shipments[row.order_id].append(
            OrderShipment(
                shipment_id=row.shipment_id,
                fulfillment_order_id=row.fulfillment_order_id,
                warehouse_id=row.warehouse_id,
                carrier=row.carrier,
                tracking_number=row.tracking_number,
                lines=[ShipmentLine(line["sku"], line["quantity"]) for line in row.lines],
                shipped_at=row.shipped_at,
            )
        )
    fulfillments: dict[str, list[FulfillmentRef]] = {i: [] for i in ids}
    for row in await conn.execute(
        select(order_fulfillments)
        .where(order_fulfillments.c.order_id.in_(ids))
        .order_by(order_fulfillments.c.order_id, order_fulfillments.c.warehouse_id)
    ):
        fulfillments[row.order_id].append(
            FulfillmentRef(row.fulfillment_order_id, row.warehouse_id)
        )
    return [
        Order(
            order_id=head.order_id,
            status=head.status,
            customer_id=head.customer_id,
            channel=head.channel,
            policy=head.policy,
            currency=head.currency,
            lines=[
                OrderLine(
                    sku=line.sku,
                    quantity=line.quantity,
                    allocated=line.allocated,
                    backordered=line.backordered,
                    shipped=line.shipped,
                    unit_price=Money(line.unit_price_minor, head.currency),
                )
                for line in lines[head.order_id]
            ],
            shipments=shipments[head.order_id],
            fulfillment_orders=fulfillments[head.order_id],
            version=head.version,
            created_at=head.created_at,
            updated_at=head.updated_at,
        )
        for head in heads
    ]
