"""Return receipts and their disposition after inspection."""

from __future__ import annotations

from litestar import Controller, Response, get, post

from shared.auth.litestar_auth import requires
from shared.auth.principal import Principal
from shared.db import Tx
from shared.events.catalog import STREAM_WMS
from shared.idempotency import IdempotencyKey, IdempotencyStore
from shared.models import IdParam
from shared.problems import ProblemError, problem_responses
from system_apis.wms.events import return_dispositioned, return_received
from system_apis.wms.port import (
    DuplicateLine,
    InsufficientStock,
    NotFound,
    OverDisposition,
    UnknownWarehouse,
    WmsError,
    WmsPort,
)
from system_apis.wms.schemas import DispositionIn, ReturnIn, ReturnReceipt

_PROBLEMS: dict[type[WmsError], tuple[int, str]] = {
    NotFound: (404, "return-not-found"),
    UnknownWarehouse: (422, "unknown-warehouse"),
    DuplicateLine: (422, "duplicate-line"),
    OverDisposition: (409, "over-disposition"),
    InsufficientStock: (409, "insufficient-stock"),
}


def _problem(exc: WmsError) -> ProblemError:
    status, slug = _PROBLEMS[type(exc)]
    return ProblemError(status, slug, str(exc))


class ReturnController(Controller):
    path = "/wms/v1/returns"
    tags = ["returns"]

    @post(
        "/",
        operation_id="receiveReturn",
        summary="Receive returned goods into quality control, emits return.received",
        responses=problem_responses(409, 422),
        **requires("wms:write"),
    )
    async def receive_return(
        self,
        data: ReturnIn,
        wms: WmsPort,
        idempotency: IdempotencyStore,
        principal: Principal,
        idempotency_key: IdempotencyKey,
    ) -> Response[ReturnReceipt]:
        async def effect(tx: Tx) -> tuple[int, ReturnReceipt]:
            try:
                receipt = await wms.receive_return(tx, data)
            except WmsError as exc:
                raise _problem(exc) from exc
            version = await wms.stock_version(tx, receipt.warehouse_id)
            tx.emit(STREAM_WMS, return_received(receipt, version))
            return 201, receipt

        return await idempotency.run_once(
            client_id=principal.client_id, key=idempotency_key, payload=data, effect=effect
        )

    @get(
        "/{return_id:str}",
        operation_id="getReturn",
        summary="Read one return receipt",
        responses=problem_responses(404),
        **requires("wms:read"),
    )
    async def get_return(self, return_id: IdParam, wms: WmsPort) -> ReturnReceipt:
        found = await wms.get_return(return_id)
        if found is None:
            raise _problem(NotFound(f"No return {return_id}."))
        return found

    @post(
        "/{return_id:str}/disposition",
        operation_id="dispositionReturn",
        summary="Disposition inspected return lines, emits return.dispositioned",
        status_code=200,
        responses=problem_responses(404, 409, 422),
        **requires("wms:write"),
    )
    async def disposition_return(
        self,
        return_id: IdParam,
        data: DispositionIn,
        wms: WmsPort,
        idempotency: IdempotencyStore,
        principal: Principal,
        idempotency_key: IdempotencyKey,
    ) -> Response[ReturnReceipt]:
        """restock: back to available; damaged: to damaged stock; scrap and
        return_to_vendor: out of the warehouse. More than was received (less what was
        already dispositioned) is 409 and changes nothing."""

        async def effect(tx: Tx) -> tuple[int, ReturnReceipt]:
            try:
                receipt = await wms.disposition_return(tx, return_id, data)
            except WmsError as exc:
                raise _problem(exc) from exc
            version = await wms.stock_version(tx, receipt.warehouse_id)
            tx.emit(STREAM_WMS, return_dispositioned(receipt, data, version))
            return 200, receipt

        payload = {"return_id": return_id, "disposition": data}
        return await idempotency.run_once(
            client_id=principal.client_id, key=idempotency_key, payload=payload, effect=effect
        )
