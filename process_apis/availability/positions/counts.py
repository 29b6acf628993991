"""Cycle counts from outside: an absolute on_hand, set only if the caller's expected
value is still the stored one (compare-and-set in the UPDATE's WHERE)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from litestar import Controller, Response, post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from process_apis.availability import clock
from process_apis.availability.db import positions
from process_apis.availability.positions.ledger import (
    Cause,
    PositionKey,
    atp_of,
    change,
    emit_replenished,
    ensure,
    lapsed_by_position,
)
from process_apis.availability.positions.queries import active_buckets
from process_apis.availability.refusals import stale_bucket
from process_apis.availability.schemas import LotPosition
from shared.auth.litestar_auth import requires
from shared.auth.principal import Principal
from shared.db import Tx
from shared.idempotency import IdempotencyStore, OptionalIdempotencyKey
from shared.models import Identifier, SkuParam
from shared.problems import problem_responses
from shared.refusals import Refusal

OnHand = Annotated[int, msgspec.Meta(ge=0, le=1_000_000_000)]
Reference = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class CountIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    location_id: Identifier
    lot: Identifier | None = None
    expected_on_hand: OnHand
    counted_on_hand: OnHand
    reference: Reference
    source: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] = "external"


class CountResult(msgspec.Struct, kw_only=True):
    sku: str
    location_id: str
    previous_on_hand: int
    position: LotPosition


async def _position(conn: AsyncConnection, key: PositionKey, now: datetime) -> LotPosition | None:
    row = (
        await conn.execute(
            select(positions).where(
                positions.c.sku == key.sku,
                positions.c.location_id == key.location_id,
                positions.c.lot == key.lot,
            )
        )
    ).first()
    if row is None:
        return None
    values, gone = active_buckets(row, await lapsed_by_position(conn, [key.sku], now))
    return LotPosition(
        lot=key.lot or None,
        available_to_promise=atp_of(values),
        updated_at=row.updated_at,
        reserved_lapsed=gone,
        **values,
    )


def _stale(key: PositionKey, expected: int, current: int) -> Refusal:
    return stale_bucket("stale-count", "on_hand", key.sku, key.location_id, expected, current)


async def set_count(tx: Tx, sku: str, data: CountIn, idempotency_key: str | None) -> CountResult:
    conn = tx.conn
    now = clock.now()
    key = PositionKey(sku, data.location_id, data.lot or "")
    if data.expected_on_hand == 0:
        await ensure(conn, key, now)
    delta = data.counted_on_hand - data.expected_on_hand
    cause = Cause("cycle_count", data.source, data.reference, idempotency_key)
    ok = await change(
        conn, key, {"on_hand": delta}, cause, now=now, expect={"on_hand": data.expected_on_hand}
    )
    found = await _position(conn, key, now)
    current = found.on_hand if found else 0
    if not ok or (delta == 0 and current != data.expected_on_hand):
        raise _stale(key, data.expected_on_hand, current)
    emit_replenished(tx, [(key, {"on_hand": delta})], "cycle_count")
    assert found is not None
    return CountResult(
        sku=sku,
        location_id=data.location_id,
        previous_on_hand=data.expected_on_hand,
        position=found,
    )


class CountController(Controller):
    path = "/availability/v1/positions"
    tags = ["availability"]

    @post(
        "/{sku:str}/counts",
        operation_id="postCycleCount",
        summary="Set a counted on_hand, compare-and-set against the expected value",
        description=(
            "The position's on_hand becomes `counted_on_hand` only if it still is "
            "`expected_on_hand`; otherwise 409 `/problems/stale-count` carrying "
            "`current_on_hand`, and nothing changes. The ledger row's reason is "
            "`cycle_count`."
        ),
        status_code=200,
        responses=problem_responses(409, 422),
        **requires("inventory:admin"),
    )
    async def post_count(
        self,
        sku: SkuParam,
        data: JSONBody[CountIn],
        idempotency: NamedDependency[IdempotencyStore],
        principal: NamedDependency[Principal],
        idempotency_key: OptionalIdempotencyKey = None,
    ) -> Response[CountResult]:
        async def effect(tx: Tx) -> tuple[int, CountResult]:
            return 200, await set_count(tx, sku, data, idempotency_key)

        return await idempotency.run_once(
            client_id=principal.client_id,
            key=idempotency_key,
            payload={"sku": sku, "count": data},
            effect=effect,
        )
