"""What happens to a shipment after dispatch: the carrier delivers it (once) or reports
an exception with a new promised date (any number of times before delivery). Neither
touches stock: they are facts of the shipment, not of the warehouse.

The statements are built once, with bind parameters: one built per call costs
SQLAlchemy more than running it (its cache key is computed each time)."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any, Literal

from sqlalchemy import BindParameter, Select, bindparam, func, insert, select
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


async def load_shipments(
    conn: AsyncConnection, by: Literal["shipment_id", "fulfillment_order_id"], value: str
) -> list[Shipment]:
    """The shipments whose ``by`` is ``value``, in id order, with their delivery and
    latest delay."""
    heads = (await conn.execute(_heads_by(by), {"value": value})).all()
    ids = {"ids": [h.shipment_id for h in heads]}
    lines: dict[str, list[StockLine]] = {i: [] for i in ids["ids"]}
    for r in await conn.execute(_LINES_OF, ids):
        lines[r.shipment_id].append(StockLine(r.sku, r.quantity, lot_out(r.lot)))
    delivered = {d.shipment_id: d.delivered_at for d in await conn.execute(_DELIVERIES_OF, ids)}
    latest: dict[str, Any] = {}
    for d in await conn.execute(_DELAYS_OF, ids):
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


@cache
def _heads_by(column: str) -> Select[Any]:
    return select(SH).where(SH.c[column] == bindparam("value")).order_by(SH.c.shipment_id)


_IDS: BindParameter[Any] = bindparam("ids", expanding=True)
_LINES_OF = select(SL).where(SL.c.shipment_id.in_(_IDS)).order_by(SL.c.line_no)
_DELIVERIES_OF = select(DELIVERIES).where(DELIVERIES.c.shipment_id.in_(_IDS))
_DELAYS_OF = select(DELAYS).where(DELAYS.c.shipment_id.in_(_IDS)).order_by(DELAYS.c.delay_no)


async def _locked_shipment(conn: AsyncConnection, shipment_id: str) -> Any:
    """The shipment's row, locked: a delivery and a delay of one shipment take turns."""
    head = (await conn.execute(_LOCKED_SHIPMENT, {"shipment_id": shipment_id})).first()
    if head is None:
        raise ShipmentNotFound(f"No shipment {shipment_id}.")
    return head


async def _delivered(conn: AsyncConnection, shipment_id: str) -> bool:
    found = await conn.scalar(_DELIVERED, {"shipment_id": shipment_id})
    return found is not None


async def _one(conn: AsyncConnection, shipment_id: str) -> Shipment:
    return (await load_shipments(conn, "shipment_id", shipment_id))[0]


_LOCKED_SHIPMENT = select(SH).where(SH.c.shipment_id == bindparam("shipment_id")).with_for_update()
_DELIVERED = select(DELIVERIES.c.shipment_id).where(
    DELIVERIES.c.shipment_id == bindparam("shipment_id")
)
_INSERT_DELIVERY = insert(DELIVERIES)
_LAST_DELAY = select(func.coalesce(func.max(DELAYS.c.delay_no), 0)).where(
    DELAYS.c.shipment_id == bindparam("shipment_id")
)
_INSERT_DELAY = insert(DELAYS)


class ReferenceDeliveries:
    db: Database

    async def get_shipment(self, shipment_id: str) -> Shipment | None:
        async with self.db.lookup() as conn:
            found = await load_shipments(conn, "shipment_id", shipment_id)
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
            _INSERT_DELIVERY,
            {"shipment_id": shipment_id, "delivered_at": delivered_at, "recorded_at": now},
        )
        return await _one(tx.conn, shipment_id), True

    async def record_delay(
        self, tx: Tx, shipment_id: str, delay: DelayIn
    ) -> tuple[Shipment, Delay]:
        await _locked_shipment(tx.conn, shipment_id)
        if await _delivered(tx.conn, shipment_id):
            raise AlreadyDelivered(f"Shipment {shipment_id} is delivered; it cannot be late.")
        last = await tx.conn.scalar(_LAST_DELAY, {"shipment_id": shipment_id})
        recorded = Delay(int(last or 0) + 1, delay.reason, delay.promised_date, datetime.now(UTC))
        await tx.conn.execute(
            _INSERT_DELAY,
            {
                "shipment_id": shipment_id,
                "delay_no": recorded.number,
                "reason": recorded.reason,
                "promised_date": recorded.promised_date,
                "reported_at": recorded.reported_at,
            },
        )
        return await _one(tx.conn, shipment_id), recorded
