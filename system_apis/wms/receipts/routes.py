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
from system_apis.wms.events import receipt_posted
from system_apis.wms.port import ReceiptNotFound, WmsPort
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
        data: JSONBody[ReceiptIn],
        wms: NamedDependency[WmsPort],
        idempotency: NamedDependency[IdempotencyStore],
        principal: NamedDependency[Principal],
        idempotency_key: IdempotencyKey,
    ) -> Response[Receipt]:
        async def effect(tx: Tx) -> tuple[int, Receipt]:
            receipt = await wms.post_receipt(tx, data)
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
    async def get_receipt(self, receipt_id: IdParam, wms: NamedDependency[WmsPort]) -> Receipt:
        receipt = await wms.get_receipt(receipt_id)
        if receipt is None:
            raise ReceiptNotFound(f"No receipt {receipt_id}.")
        return receipt
