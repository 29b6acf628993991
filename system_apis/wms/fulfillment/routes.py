from __future__ import annotations

from typing import Annotated

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, QueryParameter

from shared.auth.litestar_auth import requires
from shared.auth.principal import Principal
from shared.db import Tx
from shared.events.catalog import STREAM_WMS
from shared.idempotency import IdempotencyKey, IdempotencyStore, item_outcomes
from shared.models import (
    CursorParam,
    IdParam,
    LimitParam,
    OrderIdListQuery,
    Page,
)
from shared.paging import decode_cursor, keyset_page
from shared.problems import problem_responses
from system_apis.wms.events import fulfillment_released, pick_confirmed, shipment_dispatched
from system_apis.wms.port import FulfillmentOrderNotFound, WmsPort
from system_apis.wms.schemas import (
    FulfillmentOrder,
    FulfillmentOrderBatch,
    FulfillmentOrderBatchIn,
    FulfillmentOrderBatchResult,
    FulfillmentOrderIn,
    FulfillmentStatus,
    Pick,
    PickIn,
    Shipment,
    ShipmentIn,
)

StatusFilter = Annotated[
    list[FulfillmentStatus],
    QueryParameter(
        name="status", max_items=4, description="Only fulfillment orders in one of these statuses."
    ),
]


def shipment_request(fulfillment_order_id: str, data: ShipmentIn) -> dict[str, object]:
    """What a shipment's Idempotency-Key is a fingerprint of, on the single dispatch and
    on ``POST /wms/v1/shipments/batch`` alike. The target is part of the request: one
    key reused on another order is a 422."""
    return {"fulfillment_order_id": fulfillment_order_id, "shipment": data}


async def dispatch_shipment(
    tx: Tx, wms: WmsPort, fulfillment_order_id: str, data: ShipmentIn
) -> tuple[int, Shipment]:
    """The effect of one dispatch (single or batch item): the shipment, shipment.dispatched."""
    shipment = await wms.create_shipment(tx, fulfillment_order_id, data)
    version = await wms.stock_version(tx, shipment.warehouse_id)
    tx.emit(STREAM_WMS, shipment_dispatched(shipment, version))
    return 201, shipment


class FulfillmentController(Controller):
    path = "/wms/v1/fulfillment-orders"
    tags = ["fulfillment"]

    @post(
        "/",
        operation_id="createFulfillmentOrder",
        summary="Release a fulfillment order to a warehouse, emits fulfillment.released",
        responses=problem_responses(409, 422),
        **requires("wms:write"),
    )
    async def create_fulfillment_order(
        self,
        data: JSONBody[FulfillmentOrderIn],
        wms: NamedDependency[WmsPort],
        idempotency: NamedDependency[IdempotencyStore],
        principal: NamedDependency[Principal],
        idempotency_key: IdempotencyKey,
    ) -> Response[FulfillmentOrder]:
        async def effect(tx: Tx) -> tuple[int, FulfillmentOrder]:
            order = await wms.create_fulfillment_order(tx, data)
            tx.emit(STREAM_WMS, fulfillment_released(order))
            return 201, order

        return await idempotency.run_once(
            client_id=principal.client_id, key=idempotency_key, payload=data, effect=effect
        )

    @post(
        "/batch",
        operation_id="createFulfillmentOrders",
        summary="Release up to 100 fulfillment orders in one call, each as its single create would",
        status_code=200,
        responses=problem_responses(422),
        **requires("wms:write"),
    )
    async def create_fulfillment_orders(
        self,
        data: JSONBody[FulfillmentOrderBatchIn],
        wms: NamedDependency[WmsPort],
        idempotency: NamedDependency[IdempotencyStore],
        principal: NamedDependency[Principal],
    ) -> FulfillmentOrderBatch:
        """One transaction for the batch. Each item is answered as ``POST /`` with
        ``Idempotency-Key: <key>`` would answer it: a key seen before (by either
        endpoint) replays its fulfillment order; a new one creates it and emits
        fulfillment.released; a refusal (the key reused with another payload, an unknown
        warehouse, ...) changes nothing of that item and nothing of the others. Keys
        repeated within the batch are 422 ``duplicate-idempotency-key``."""
        items = data.fulfillment_orders
        orders = [item.order() for item in items]

        async def effect(tx: Tx, n: int) -> tuple[int, FulfillmentOrder]:
            order = await wms.create_fulfillment_order(tx, orders[n])
            tx.emit(STREAM_WMS, fulfillment_released(order))
            return 201, order

        answers = await idempotency.run_each_once(
            client_id=principal.client_id,
            items=[(item.key, order) for item, order in zip(items, orders, strict=True)],
            effect=effect,
        )
        return FulfillmentOrderBatch(
            [
                FulfillmentOrderBatchResult(item.key, fulfillment_order=made, refusal=why)
                for item, (made, why) in zip(
                    items, item_outcomes(answers, FulfillmentOrder), strict=True
                )
            ]
        )

    @get(
        "/",
        operation_id="listFulfillmentOrders",
        summary="List fulfillment orders, optionally of some orders or in some statuses",
        responses=problem_responses(),
        **requires("wms:read"),
    )
    async def list_fulfillment_orders(
        self,
        wms: NamedDependency[WmsPort],
        order_id: OrderIdListQuery = (),  # type: ignore[assignment]
        status: StatusFilter = (),  # type: ignore[assignment]
        cursor: CursorParam = None,
        limit: LimitParam = 50,
    ) -> Page[FulfillmentOrder]:
        """``status=released&status=partially_shipped`` is the pick queue."""
        found = await wms.list_fulfillment_orders(
            list(order_id), list(status), decode_cursor(cursor), limit + 1
        )
        return keyset_page(found, limit, key=lambda f: f.fulfillment_order_id)

    @get(
        "/{fulfillment_order_id:str}",
        operation_id="getFulfillmentOrder",
        summary="Read one fulfillment order",
        responses=problem_responses(404),
        **requires("wms:read"),
    )
    async def get_fulfillment_order(
        self, fulfillment_order_id: IdParam, wms: NamedDependency[WmsPort]
    ) -> FulfillmentOrder:
        order = await wms.get_fulfillment_order(fulfillment_order_id)
        if order is None:
            raise FulfillmentOrderNotFound(f"No fulfillment order {fulfillment_order_id}.")
        return order

    @post(
        "/{fulfillment_order_id:str}/cancel",
        operation_id="cancelFulfillmentOrder",
        summary="Cancel a fulfillment order that has not shipped",
        status_code=200,
        responses=problem_responses(404, 409),
        **requires("wms:write"),
    )
    async def cancel_fulfillment_order(
        self,
        fulfillment_order_id: IdParam,
        wms: NamedDependency[WmsPort],
        idempotency: NamedDependency[IdempotencyStore],
    ) -> FulfillmentOrder:
        async with idempotency.db.transaction() as tx:
            return await wms.cancel_fulfillment_order(tx, fulfillment_order_id)

    @post(
        "/{fulfillment_order_id:str}/shipments",
        operation_id="createShipment",
        summary="Dispatch a shipment against a fulfillment order, emits shipment.dispatched",
        responses=problem_responses(404, 409, 422),
        **requires("wms:write"),
    )
    async def create_shipment(
        self,
        fulfillment_order_id: IdParam,
        data: JSONBody[ShipmentIn],
        wms: NamedDependency[WmsPort],
        idempotency: NamedDependency[IdempotencyStore],
        principal: NamedDependency[Principal],
        idempotency_key: IdempotencyKey,
    ) -> Response[Shipment]:
        async def effect(tx: Tx) -> tuple[int, Shipment]:
            return await dispatch_shipment(tx, wms, fulfillment_order_id, data)

        return await idempotency.run_once(
            client_id=principal.client_id,
            key=idempotency_key,
            payload=shipment_request(fulfillment_order_id, data),
            effect=effect,
        )

    @get(
        "/{fulfillment_order_id:str}/shipments",
        operation_id="listShipments",
        summary="Shipments dispatched against a fulfillment order",
        responses=problem_responses(404),
        **requires("wms:read"),
    )
    async def list_shipments(
        self,
        fulfillment_order_id: IdParam,
        wms: NamedDependency[WmsPort],
        cursor: CursorParam = None,
        limit: LimitParam = 100,
    ) -> Page[Shipment]:
        if await wms.get_fulfillment_order(fulfillment_order_id) is None:
            raise FulfillmentOrderNotFound(f"No fulfillment order {fulfillment_order_id}.")
        # A fulfillment order has few shipments: page over them in shipment id order.
        after = decode_cursor(cursor)
        shipments = sorted(
            await wms.list_shipments(fulfillment_order_id), key=lambda s: s.shipment_id
        )
        remaining = [s for s in shipments if after is None or s.shipment_id > after]
        return keyset_page(remaining, limit, key=lambda s: s.shipment_id)

    @post(
        "/{fulfillment_order_id:str}/picks",
        operation_id="confirmPick",
        summary="Confirm picked stock of a fulfillment order (by lot), emits pick.confirmed",
        responses=problem_responses(404, 409, 422),
        **requires("wms:write"),
    )
    async def confirm_pick(
        self,
        fulfillment_order_id: IdParam,
        data: JSONBody[PickIn],
        wms: NamedDependency[WmsPort],
        idempotency: NamedDependency[IdempotencyStore],
        principal: NamedDependency[Principal],
        idempotency_key: IdempotencyKey,
    ) -> Response[Pick]:
        """Picked stock stays on hand but is held for the order until it ships; the
        shipment takes the picked lots first."""

        async def effect(tx: Tx) -> tuple[int, Pick]:
            pick = await wms.confirm_pick(tx, fulfillment_order_id, data)
            version = await wms.stock_version(tx, pick.warehouse_id)
            tx.emit(STREAM_WMS, pick_confirmed(pick, version))
            return 201, pick

        payload = {"fulfillment_order_id": fulfillment_order_id, "pick": data}
        return await idempotency.run_once(
            client_id=principal.client_id, key=idempotency_key, payload=payload, effect=effect
        )
