"""Return receipts (against a return authorization, ADR 0032), their disposition after
inspection, and the release of units inspection kept in quality control."""

from __future__ import annotations

import uuid_utils
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
from system_apis.wms.events import final_lines, return_dispositioned, return_received
from system_apis.wms.port import ReturnNotFound, WmsPort
from system_apis.wms.schemas import DispositionIn, ReleaseIn, ReturnIn, ReturnReceipt


def new_disposition_id() -> str:
    return f"DSP-{uuid_utils.uuid7()}"


class ReturnController(Controller):
    path = "/wms/v1/returns"
    tags = ["returns"]

    @post(
        "/",
        operation_id="receiveReturn",
        summary="Receive returned goods against an RMA into quality control, emits return.received",
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
        """``rma_id`` is required: a receipt without one is 422 rma-required, an unknown
        one 422 unknown-rma, a cancelled or expired one 409 rma-closed, more of a sku
        than the RMA has room for (or a sku it lacks) 409 rma-exhausted, another order
        than the RMA's 422 rma-order-mismatch. A refused receipt takes nothing into stock."""

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
        return_to_vendor: out of the warehouse; quality_control: stays there, counted in
        the line's ``held`` until a release. More than was received (less what was
        already dispositioned or held) is 409 and changes nothing. The event carries the
        final lines only, under a new ``disposition_id``; a call that only holds emits none."""

        async def effect(tx: Tx) -> tuple[int, ReturnReceipt]:
            receipt = await wms.disposition_return(tx, return_id, data)
            lines = final_lines(data.lines)
            if lines:
                version = await wms.stock_version(tx, receipt.warehouse_id)
                event = return_dispositioned(receipt, lines, new_disposition_id(), version)
                tx.emit(STREAM_WMS, event)
            return 200, receipt

        payload = {"return_id": return_id, "disposition": data}
        return await idempotency.run_once(
            client_id=principal.client_id, key=idempotency_key, payload=payload, effect=effect
        )

    @post(
        "/{return_id:str}/release",
        operation_id="releaseReturn",
        summary="Release held return units to their final disposition, emits return.dispositioned",
        status_code=200,
        responses=problem_responses(404, 409, 422),
        **requires("wms:write"),
    )
    async def release_return(
        self,
        return_id: IdParam,
        data: JSONBody[ReleaseIn],
        wms: NamedDependency[WmsPort],
        idempotency: NamedDependency[IdempotencyStore],
        principal: NamedDependency[Principal],
        idempotency_key: IdempotencyKey,
    ) -> Response[ReturnReceipt]:
        """Units an inspection kept in quality control (``held``) get their final
        disposition (restock unless said otherwise). More than is held is 409
        over-release and changes nothing. The event says ``released``: true."""

        async def effect(tx: Tx) -> tuple[int, ReturnReceipt]:
            receipt = await wms.release_return(tx, return_id, data)
            version = await wms.stock_version(tx, receipt.warehouse_id)
            event = return_dispositioned(
                receipt, final_lines(data.lines), new_disposition_id(), version, released=True
            )
            tx.emit(STREAM_WMS, event)
            return 200, receipt

        payload = {"return_id": return_id, "release": data}
        return await idempotency.run_once(
            client_id=principal.client_id, key=idempotency_key, payload=payload, effect=effect
        )
