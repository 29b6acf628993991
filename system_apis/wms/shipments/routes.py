"""Shipments after dispatch: read one, the carrier's delivery and its exceptions."""

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
from system_apis.wms.events import shipment_delayed, shipment_delivered
from system_apis.wms.port import ShipmentNotFound, WmsPort
from system_apis.wms.schemas import (
    DelayIn,
    DeliveryBatchIn,
    DeliveryIn,
    Shipment,
    ShipmentBatch,
)
from system_apis.wms.shipment_batches import answer_each


async def deliver_shipment(
    tx: Tx, wms: WmsPort, shipment_id: str, data: DeliveryIn
) -> tuple[int, Shipment]:
    """The effect of one delivery (single or batch item): the shipment as delivered,
    shipment.delivered the first time only."""
    shipment, delivered_now = await wms.record_delivery(tx, shipment_id, data)
    if delivered_now:
        tx.emit(STREAM_WMS, shipment_delivered(shipment))
    return 200, shipment


def delivery_request(shipment_id: str, data: DeliveryIn) -> dict[str, object]:
    """What a batch item's idempotency key is a fingerprint of: the target is part of
    the request, so one key reused on another shipment is a 422."""
    return {"shipment_id": shipment_id, "delivery": data}


class ShipmentController(Controller):
    path = "/wms/v1/shipments"
    tags = ["shipments"]

    @get(
        "/{shipment_id:str}",
        operation_id="getShipment",
        summary="Read one shipment, with its delivery and latest promised date",
        responses=problem_responses(404),
        **requires("wms:read"),
    )
    async def get_shipment(self, shipment_id: IdParam, wms: NamedDependency[WmsPort]) -> Shipment:
        shipment = await wms.get_shipment(shipment_id)
        if shipment is None:
            raise ShipmentNotFound(f"No shipment {shipment_id}.")
        return shipment

    @post(
        "/{shipment_id:str}/delivery",
        operation_id="recordDelivery",
        summary="Record the carrier's delivery of a shipment, emits shipment.delivered once",
        status_code=200,
        responses=problem_responses(404, 422),
        **requires("wms:write"),
    )
    async def record_delivery(
        self,
        shipment_id: IdParam,
        data: JSONBody[DeliveryIn],
        wms: NamedDependency[WmsPort],
        idempotency: NamedDependency[IdempotencyStore],
    ) -> Shipment:
        """The body is a JSON object (``{}`` for now): ``delivered_at`` defaults to now and may not precede the dispatch (422). A
        shipment is delivered once: a second call answers it unchanged (the first
        ``delivered_at`` stands) and emits nothing."""
        async with idempotency.db.transaction() as tx:
            _, shipment = await deliver_shipment(tx, wms, shipment_id, data)
        return shipment

    @post(
        "/{shipment_id:str}/delays",
        operation_id="recordDelay",
        summary="Record a carrier exception with a new promised date, emits shipment.delayed",
        responses=problem_responses(404, 409, 422),
        **requires("wms:write"),
    )
    async def record_delay(
        self,
        shipment_id: IdParam,
        data: JSONBody[DelayIn],
        wms: NamedDependency[WmsPort],
        idempotency: NamedDependency[IdempotencyStore],
        principal: NamedDependency[Principal],
        idempotency_key: IdempotencyKey,
    ) -> Response[Shipment]:
        """The latest delay's ``promised_date`` and ``reason`` show on the shipment. A
        delivered shipment is refused (409 ``/problems/shipment-delivered``)."""

        async def effect(tx: Tx) -> tuple[int, Shipment]:
            shipment, delay = await wms.record_delay(tx, shipment_id, data)
            tx.emit(STREAM_WMS, shipment_delayed(shipment, delay))
            return 201, shipment

        payload = {"shipment_id": shipment_id, "delay": data}
        return await idempotency.run_once(
            client_id=principal.client_id, key=idempotency_key, payload=payload, effect=effect
        )


class DeliveryController(Controller):
    path = "/wms/v1/deliveries"
    tags = ["shipments"]

    @post(
        "/batch",
        operation_id="recordDeliveries",
        summary="Record up to 100 carrier deliveries in one call, each as its single delivery would",
        status_code=200,
        responses=problem_responses(422),
        **requires("wms:write"),
    )
    async def record_deliveries(
        self,
        data: JSONBody[DeliveryBatchIn],
        wms: NamedDependency[WmsPort],
        idempotency: NamedDependency[IdempotencyStore],
        principal: NamedDependency[Principal],
    ) -> ShipmentBatch:
        """One transaction for the batch. Each item is answered as ``POST
        /wms/v1/shipments/{shipment_id}/delivery`` would answer it, under the item's own
        key: a key seen before replays its shipment; a new one records the delivery and
        emits shipment.delivered (a shipment delivered already is answered unchanged and
        emits nothing); a refusal (the key reused with another payload, 404 unknown
        shipment, 422 delivered before dispatch, ...) changes nothing of that item and
        nothing of the others. Keys repeated within the batch are 422
        ``duplicate-idempotency-key``."""
        items = data.deliveries

        async def effect(tx: Tx, n: int) -> tuple[int, Shipment]:
            return await deliver_shipment(tx, wms, items[n].shipment_id, items[n].delivery)

        return await answer_each(
            idempotency,
            principal.client_id,
            [
                (item.idempotency_key, delivery_request(item.shipment_id, item.delivery))
                for item in items
            ],
            effect,
        )
