from __future__ import annotations

from litestar import Controller, Response, get, post

from shared.auth.litestar_auth import requires
from shared.auth.principal import Principal
from shared.db import Tx
from shared.events.catalog import STREAM_WMS
from shared.idempotency import IdempotencyKey, IdempotencyStore
from shared.models import IdParam
from shared.problems import ProblemError, problem_responses
from system_apis.wms.events import receipt_posted
from system_apis.wms.port import UnknownWarehouse, WmsPort
from system_apis.wms.schemas import Receipt, ReceiptIn


class ReceiptController(Controller):
    path = "/wms/v1/receipts"
    tags = ["receipts"]

    @post(
        "/",
        operation_id="postReceipt",
        summary="Post an inbound receipt: raises physical stock, emits receipt.posted",
        responses=problem_responses(409, 422),
        **requires("wms:write"),
    )
    async def post_receipt(
        self,
        data: ReceiptIn,
        wms: WmsPort,
        idempotency: IdempotencyStore,
        principal: Principal,
        idempotency_key: IdempotencyKey,
    ) -> Response[Receipt]:
        async def effect(tx: Tx) -> tuple[int, Receipt]:
            try:
                receipt = await wms.post_receipt(tx, data)
            except UnknownWarehouse as exc:
                raise ProblemError(422, "unknown-warehouse", str(exc)) from exc
            version = await wms.stock_version(tx, receipt.warehouse_id)
            tx.emit(STREAM_WMS, receipt_posted(receipt, version))
            return 201, receipt

        return await idempotency.run_once(
            client_id=principal.client_id, key=idempotency_key, payload=data, effect=effect
        )

    @get(
        "/{receipt_id:str}",
        operation_id="getReceipt",
        summary="Read one receipt",
        responses=problem_responses(404),
        **requires("wms:read"),
    )
    async def get_receipt(self, receipt_id: IdParam, wms: WmsPort) -> Receipt:
        receipt = await wms.get_receipt(receipt_id)
        if receipt is None:
            raise ProblemError(404, "receipt-not-found", f"No receipt {receipt_id}.")
        return receipt
