"""Stock adjustments, quality status changes and cycle counts."""

from __future__ import annotations

from litestar import Controller, Response, post

from shared.auth.litestar_auth import requires
from shared.auth.principal import Principal
from shared.db import Tx
from shared.events.catalog import STREAM_WMS
from shared.idempotency import IdempotencyKey, IdempotencyStore
from shared.problems import ProblemError, problem_responses
from system_apis.wms.events import inventory_adjusted
from system_apis.wms.port import InsufficientStock, StaleExpectation, UnknownWarehouse, WmsPort
from system_apis.wms.schemas import Adjustment, AdjustmentIn, CycleCount, CycleCountIn


def _refusal(exc: UnknownWarehouse | InsufficientStock) -> ProblemError:
    if isinstance(exc, UnknownWarehouse):
        return ProblemError(422, "unknown-warehouse", str(exc))
    return ProblemError(409, "insufficient-stock", str(exc))


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
        data: AdjustmentIn,
        wms: WmsPort,
        idempotency: IdempotencyStore,
        principal: Principal,
        idempotency_key: IdempotencyKey,
    ) -> Response[Adjustment]:
        """Each line changes the stock in one status (available, quality_control,
        damaged, hold) by a non-zero delta; a status change is two lines (minus in the
        old status, plus in the new one). Nothing may go below zero, and held stock may
        not exceed what is on hand: such an adjustment is refused whole (409)."""
        if any(line.quantity_delta == 0 for line in data.lines):
            raise ProblemError(422, "zero-quantity", "Every line must change the quantity.")

        async def effect(tx: Tx) -> tuple[int, Adjustment]:
            try:
                adjustment = await wms.post_adjustment(tx, data)
            except (UnknownWarehouse, InsufficientStock) as exc:
                raise _refusal(exc) from exc
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
        data: CycleCountIn,
        wms: WmsPort,
        idempotency: IdempotencyStore,
        principal: Principal,
        idempotency_key: IdempotencyKey,
    ) -> Response[CycleCount]:
        """The count replaces ``expected_quantity``: when the WMS's on-hand is no longer
        that figure the count is refused with 409 ``/problems/stale-count`` carrying
        ``current_quantity``. A difference is booked as an adjustment (reason
        ``cycle_count``) and emitted as ``inventory.adjusted``."""

        async def effect(tx: Tx) -> tuple[int, CycleCount]:
            try:
                count, adjustment = await wms.post_cycle_count(tx, data)
            except StaleExpectation as exc:
                raise ProblemError(
                    409, "stale-count", str(exc), extra={"current_quantity": exc.current}
                ) from exc
            except (UnknownWarehouse, InsufficientStock) as exc:
                raise _refusal(exc) from exc
            if adjustment is not None:
                version = await wms.stock_version(tx, adjustment.warehouse_id)
                tx.emit(STREAM_WMS, inventory_adjusted(adjustment, version))
            return 201, count

        return await idempotency.run_once(
            client_id=principal.client_id, key=idempotency_key, payload=data, effect=effect
        )
