"""Stock adjustments, quality status changes and cycle counts."""

from __future__ import annotations

from litestar import Controller, Response, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from shared.auth.litestar_auth import requires
from shared.auth.principal import Principal
from shared.db import Tx
from shared.events.catalog import STREAM_WMS
from shared.idempotency import IdempotencyKey, IdempotencyStore
from shared.problems import problem_responses
from shared.refusals import Refusal
from system_apis.wms.events import inventory_adjusted
from system_apis.wms.port import WmsPort
from system_apis.wms.schemas import Adjustment, AdjustmentIn, CycleCount, CycleCountIn


class AdjustmentController(Controller):
    path = "/wms/v1/adjustments"
    tags = ["stock"]

    @post(
        "/",
        operation_id="postAdjustment",
        summary="Adjust physical stock or move it between statuses, emits inventory.adjusted",
        responses=problem_responses(409, 422),
        **requires("wms:write"),
    )
    async def post_adjustment(
        self,
        data: JSONBody[AdjustmentIn],
        wms: NamedDependency[WmsPort],
        idempotency: NamedDependency[IdempotencyStore],
        principal: NamedDependency[Principal],
        idempotency_key: IdempotencyKey,
    ) -> Response[Adjustment]:
        """Each line changes the stock in one status (available, quality_control,
        damaged, hold) by a non-zero delta; a status change is two lines (minus in the
        old status, plus in the new one). Nothing may go below zero, and held stock may
        not exceed what is on hand: such an adjustment is refused whole (409)."""
        if any(line.quantity_delta == 0 for line in data.lines):
            raise Refusal(422, "zero-quantity", "Every line must change the quantity.")

        async def effect(tx: Tx) -> tuple[int, Adjustment]:
            adjustment = await wms.post_adjustment(tx, data)
            version = await wms.stock_version(tx, adjustment.warehouse_id)
            tx.emit(STREAM_WMS, inventory_adjusted(adjustment, version))
            return 201, adjustment

        return await idempotency.run_once(
            client_id=principal.client_id, key=idempotency_key, payload=data, effect=effect
        )


class CycleCountController(Controller):
    path = "/wms/v1/cycle-counts"
    tags = ["stock"]

    @post(
        "/",
        operation_id="postCycleCount",
        summary="Record a cycle count (compare-and-set on physical on-hand)",
        responses=problem_responses(409, 422),
        **requires("wms:write"),
    )
    async def post_cycle_count(
        self,
        data: JSONBody[CycleCountIn],
        wms: NamedDependency[WmsPort],
        idempotency: NamedDependency[IdempotencyStore],
        principal: NamedDependency[Principal],
        idempotency_key: IdempotencyKey,
    ) -> Response[CycleCount]:
        """The count replaces ``expected_quantity``: when the WMS's on-hand is no longer
        that figure the count is refused with 409 ``/problems/stale-count`` carrying
        ``current_quantity``. A difference is booked as an adjustment (reason
        ``cycle_count``) and emitted as ``inventory.adjusted``."""

        async def effect(tx: Tx) -> tuple[int, CycleCount]:
            count, adjustment = await wms.post_cycle_count(tx, data)
            if adjustment is not None:
                version = await wms.stock_version(tx, adjustment.warehouse_id)
                tx.emit(STREAM_WMS, inventory_adjusted(adjustment, version))
            return 201, count

        return await idempotency.run_once(
            client_id=principal.client_id, key=idempotency_key, payload=data, effect=effect
        )
