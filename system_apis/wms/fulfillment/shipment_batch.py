"""``POST /wms/v1/shipments/batch``: a warehouse confirms up to 100 shipments in one
call, each answered as its single ``POST
/wms/v1/fulfillment-orders/{fulfillment_order_id}/shipments`` would answer it."""

from __future__ import annotations

from litestar import Controller, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from shared.auth.litestar_auth import requires
from shared.auth.principal import Principal
from shared.db import Tx
from shared.idempotency import IdempotencyStore
from shared.problems import problem_responses
from system_apis.wms.fulfillment.routes import dispatch_shipment, shipment_request
from system_apis.wms.port import WmsPort
from system_apis.wms.schemas import Shipment, ShipmentBatch, ShipmentBatchIn
from system_apis.wms.shipment_batches import answer_each


class ShipmentBatchController(Controller):
    path = "/wms/v1/shipments"
    tags = ["shipments"]

    @post(
        "/batch",
        operation_id="createShipments",
        summary="Dispatch up to 100 shipments in one call, each as its single dispatch would",
        status_code=200,
        responses=problem_responses(422),
        **requires("wms:write"),
    )
    async def create_shipments(
        self,
        data: JSONBody[ShipmentBatchIn],
        wms: NamedDependency[WmsPort],
        idempotency: NamedDependency[IdempotencyStore],
        principal: NamedDependency[Principal],
    ) -> ShipmentBatch:
        """One transaction for the batch. Each item is answered as the single dispatch
        against its ``fulfillment_order_id`` with ``Idempotency-Key: <idempotency_key>``
        would answer it: a key seen before (by either endpoint) replays its shipment; a
        new one dispatches it and emits shipment.dispatched; a refusal (the key reused
        with another payload, 404 unknown fulfillment order, 409 cancelled or more than
        remains open, ...) changes nothing of that item and nothing of the others. Items
        run in the batch's order (two against one order see each other). Keys repeated
        within the batch are 422 ``duplicate-idempotency-key``."""
        items = data.shipments

        async def effect(tx: Tx, n: int) -> tuple[int, Shipment]:
            return await dispatch_shipment(
                tx, wms, items[n].fulfillment_order_id, items[n].shipment
            )

        return await answer_each(
            idempotency,
            principal.client_id,
            [
                (item.idempotency_key, shipment_request(item.fulfillment_order_id, item.shipment))
                for item in items
            ],
            effect,
        )
