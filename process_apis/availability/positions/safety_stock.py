"""Safety stock per (sku, location), set as an absolute value (decision 0024).

It is kept on the location's position without a lot (lot ``''``, where the ERP's
facts land too) and deducted from ATP like every other bucket: a location's ATP is the
sum over its positions, so it holds back lotted stock as well (the planner spreads a
position's shortfall over its location, ``allocations/planner.py``). A change is one
guarded UPDATE plus its ledger row (reason ``safety_stock_set``); setting the value the
position already has writes nothing, so the same PUT again answers the same."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from litestar import Controller, put
from litestar.di import NamedDependency
from litestar.params import JSONBody
from sqlalchemy.ext.asyncio import AsyncConnection

from process_apis.availability import clock
from process_apis.availability.db import BUCKETS
from process_apis.availability.positions import queries
from process_apis.availability.positions.ledger import (
    Cause,
    PositionKey,
    change,
    emit_replenished,
    ensure,
    locked_rows,
)
from process_apis.availability.refusals import stale_bucket
from process_apis.availability.schemas import LocationAvailability
from shared.auth.litestar_auth import requires
from shared.db import Database, Tx
from shared.models import Identifier, SkuParam
from shared.problems import problem_responses
from shared.refusals import Refusal

REASON = "safety_stock_set"

SafetyQuantity = Annotated[int, msgspec.Meta(ge=0, le=1_000_000_000)]
Reference = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=100,
        description="The document or note behind the change (the ledger row's reference).",
    ),
]
Source = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Expected = Annotated[
    int,
    msgspec.Meta(
        ge=0,
        le=1_000_000_000,
        description="If given, the stored value this write replaces (compare-and-set).",
    ),
]


class SafetyStockIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    location_id: Identifier
    safety_stock: SafetyQuantity
    reference: Reference
    source: Source = "external"
    expected_safety_stock: Expected | None = None


class SafetyStock(msgspec.Struct, kw_only=True):
    """The location's safety stock and the location's availability with it."""

    sku: str
    location_id: str
    safety_stock: int
    location: LocationAvailability


def _stale(key: PositionKey, expected: int, current: int) -> Refusal:
    return stale_bucket(
        "stale-safety-stock", "safety_stock", key.sku, key.location_id, expected, current
    )


async def _answer(conn: AsyncConnection, key: PositionKey, now: datetime) -> SafetyStock:
    found = (await queries.items(conn, [key.sku], now))[0]
    here = next((loc for loc in found.locations if loc.location_id == key.location_id), None)
    if here is None:
        zeros = dict.fromkeys(BUCKETS, 0)
        here = LocationAvailability(
            location_id=key.location_id, available_to_promise=0, lots=[], **zeros
        )
    return SafetyStock(
        sku=key.sku, location_id=key.location_id, safety_stock=here.safety_stock, location=here
    )


async def set_safety_stock(tx: Tx, sku: str, data: SafetyStockIn) -> SafetyStock:
    conn = tx.conn
    now = clock.now()
    key = PositionKey(sku, data.location_id)
    if data.safety_stock:
        await ensure(conn, key, now)
    # The location's positions, locked in the order allocations lock them: an
    # allocation deciding on this location finishes first or sees the new value.
    rows = await locked_rows(conn, [sku], data.location_id)
    current = next((int(r.safety_stock) for r in rows if r.lot == key.lot), 0)
    if current != data.safety_stock:
        expected = data.expected_safety_stock
        if expected is not None and expected != current:
            raise _stale(key, expected, current)
        cause = Cause(REASON, data.source, data.reference)
        delta = {"safety_stock": data.safety_stock - current}
        if not await change(conn, key, delta, cause, now=now, expect={"safety_stock": current}):
            raise RuntimeError(f"position {key} changed under its lock")
        emit_replenished(tx, [(key, delta)], REASON)
    return await _answer(conn, key, now)


class SafetyStockController(Controller):
    path = "/availability/v1/items"
    tags = ["availability"]

    @put(
        "/{sku:str}/safety-stock",
        operation_id="putSafetyStock",
        summary="Set the safety stock of an item at a location",
        description=(
            "An absolute value, deducted from the location's available-to-promise and "
            "channel availability; allocations and holds cannot take it. With "
            "`expected_safety_stock` the write is a compare-and-set: 409 "
            "`/problems/stale-safety-stock` carrying `current_safety_stock` when the "
            "stored value differs, and nothing changes. Setting the value already "
            "stored changes nothing and answers the same. Each change is a ledger row "
            "with reason `safety_stock_set`."
        ),
        status_code=200,
        responses=problem_responses(409, 422),
        **requires("inventory:admin"),
    )
    async def put_safety_stock(
        self, sku: SkuParam, data: JSONBody[SafetyStockIn], db: NamedDependency[Database]
    ) -> SafetyStock:
        async with db.transaction() as tx:
            return await set_safety_stock(tx, sku, data)
