"""Return receipts and their disposition after inspection."""

from __future__ import annotations

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from shared.auth.litestar_auth import requires
from shared.auth.principal import Principal
from shared.db import Tx
from shared.events.catalog import STREAM_WMS
from shared.idempotency import IdempotencyKey, IdempotencyStore
from shared.models import IdParam
from shared.problems import problem_responses
from system_apis.wms.events import return_dispositioned, return_received
from system_apis.wms.port import ReturnNotFound, WmsPort
from system_apis.wms.schemas import DispositionIn, ReturnIn, ReturnReceipt


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
        data: JSONBody[ReturnIn],
        wms: NamedDependency[WmsPort],
        idempotency: NamedDependency[IdempotencyStore],
        principal: NamedDependency[Principal],
        idempotency_key: IdempotencyKey,
    ) -> Response[ReturnReceipt]:
        async def effect(tx: Tx) -> tuple[int, ReturnReceipt]:
            receipt = await wms.receive_return(tx, data)
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
    async def get_return(self, return_id: IdParam, wms: NamedDependency[WmsPort]) -> ReturnReceipt:
        found = await wms.get_return(return_id)
        if found is None:
            raise ReturnNotFound(f"No return {return_id}.")
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
        data: JSONBody[DispositionIn],
        wms: NamedDependency[WmsPort],
        idempotency: NamedDependency[IdempotencyStore],
        principal: NamedDependency[Principal],
        idempotency_key: IdempotencyKey,
    ) -> Response[ReturnReceipt]:
        """restock: back to available; damaged: to damaged stock; scrap and
        return_to_vendor: out of the warehouse. More than was received (less what was
        already dispositioned) is 409 and changes nothing."""

        async def effect(tx: Tx) -> tuple[int, ReturnReceipt]:
            receipt = await wms.disposition_return(tx, return_id, data)
            version = await wms.stock_version(tx, receipt.warehouse_id)
            tx.emit(STREAM_WMS, return_dispositioned(receipt, data, version))
            return 200, receipt

        payload = {"return_id": return_id, "disposition": data}
        return await idempotency.run_once(
            client_id=principal.client_id, key=idempotency_key, payload=payload, effect=effect
        )
