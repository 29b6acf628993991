"""What happens to a shipment after dispatch: the carrier delivers it (once) or reports
an exception with a new promised date (any number of times before delivery). Neither
touches stock: they are facts of the shipment, not of the warehouse."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db import Database, Tx
from system_apis.wms import db as tables
from system_apis.wms.adapters.common import lot_out
from system_apis.wms.port import AlreadyDelivered, DeliveryBeforeShipment, ShipmentNotFound
from system_apis.wms.schemas import Delay, DelayIn, DeliveryIn, Shipment, StockLine

SH = tables.shipments
SL = tables.shipment_lines
DELIVERIES = tables.shipment_deliveries
DELAYS = tables.shipment_delays


async def load_shipments(conn: AsyncConnection, where: ColumnElement[bool]) -> list[Shipment]:
    """The shipments ``where`` selects, in id order, with their delivery and latest delay."""
    heads = (await conn.execute(select(SH).where(where).order_by(SH.c.shipment_id))).all()
    ids = [h.shipment_id for h in heads]
    lines: dict[str, list[StockLine]] = {i: [] for i in ids}
    rows = await conn.execute(select(SL).where(SL.c.shipment_id.in_(ids)).order_by(SL.c.line_no))
    for r in rows:
        lines[r.shipment_id].append(StockLine(r.sku, r.quantity, lot_out(r.lot)))
    found = await conn.execute(select(DELIVERIES).where(DELIVERIES.c.shipment_id.in_(ids)))
    delivered = {d.shipment_id: d.delivered_at for d in found}
    latest: dict[str, Any] = {}
    delays = await conn.execute(
        select(DELAYS).where(DELAYS.c.shipment_id.in_(ids)).order_by(DELAYS.c.delay_no)
    )
    for d in delays:
        latest[d.shipment_id] = d
    return [
        Shipment(
            shipment_id=h.shipment_id,
            fulfillment_order_id=h.fulfillment_order_id,
            order_id=h.order_id,
            warehouse_id=h.warehouse_id,
            carrier=h.carrier,
            tracking_number=h.tracking_number,
            lines=lines[h.shipment_id],
            shipped_at=h.shipped_at,
            delivered_at=delivered.get(h.shipment_id),
            promised_date=latest[h.shipment_id].promised_date if h.shipment_id in latest else None,
            delay_reason=latest[h.shipment_id].reason if h.shipment_id in latest else None,
        )
        for h in heads
    ]


async def _locked_shipment(conn: AsyncConnection, shipment_id: str) -> Any:
    """The shipment's row, locked: a delivery and a delay of one shipment take turns."""
    head = (
        await conn.execute(select(SH).where(SH.c.shipment_id == shipment_id).with_for_update())
    ).first()
    if head is None:
        raise ShipmentNotFound(f"No shipment {shipment_id}.")
    return head


async def _delivered(conn: AsyncConnection, shipment_id: str) -> bool:
    found = await conn.scalar(
        select(DELIVERIES.c.shipment_id).where(DELIVERIES.c.shipment_id == shipment_id)
    )
    return found is not None


async def _one(conn: AsyncConnection, shipment_id: str) -> Shipment:
    return (await load_shipments(conn, SH.c.shipment_id == shipment_id))[0]


class ReferenceDeliveries:
    db: Database

    async def get_shipment(self, shipment_id: str) -> Shipment | None:
        async with self.db.read() as conn:
            found = await load_shipments(conn, SH.c.shipment_id == shipment_id)
        return found[0] if found else None

    async def record_delivery(
        self, tx: Tx, shipment_id: str, delivery: DeliveryIn
    ) -> tuple[Shipment, bool]:
        head = await _locked_shipment(tx.conn, shipment_id)
        if await _delivered(tx.conn, shipment_id):
            return await _one(tx.conn, shipment_id), False
        now = datetime.now(UTC)
        delivered_at = (delivery.delivered_at or now).astimezone(UTC)
        if delivered_at < head.shipped_at:
            raise DeliveryBeforeShipment(
                f"Shipment {shipment_id} shipped at {head.shipped_at.isoformat()}; "
                "it cannot have been delivered before."
            )
        await tx.conn.execute(
            insert(DELIVERIES).values(
                shipment_id=shipment_id, delivered_at=delivered_at, recorded_at=now
            )
        )
        return await _one(tx.conn, shipment_id), True

    async def record_delay(
        self, tx: Tx, shipment_id: str, delay: DelayIn
    ) -> tuple[Shipment, Delay]:
        await _locked_shipment(tx.conn, shipment_id)
        if await _delivered(tx.conn, shipment_id):
            raise AlreadyDelivered(f"Shipment {shipment_id} is delivered; it cannot be late.")
        last = await tx.conn.scalar(
            select(func.coalesce(func.max(DELAYS.c.delay_no), 0)).where(
                DELAYS.c.shipment_id == shipment_id
            )
        )
        recorded = Delay(int(last or 0) + 1, delay.reason, delay.promised_date, datetime.now(UTC))
        await tx.conn.execute(
            insert(DELAYS).values(
                shipment_id=shipment_id,
                delay_no=recorded.number,
                reason=recorded.reason,
                promised_date=recorded.promised_date,
                reported_at=recorded.reported_at,
            )
        )
        return await _one(tx.conn, shipment_id), recorded
