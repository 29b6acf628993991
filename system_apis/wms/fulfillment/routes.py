from __future__ import annotations

from litestar import Controller, Response, get, post

from shared.auth.litestar_auth import requires
from shared.auth.principal import Principal
from shared.db import Tx
from shared.events.catalog import STREAM_WMS
from shared.idempotency import IdempotencyKey, IdempotencyStore
from shared.models import (
    CursorParam,
    IdParam,
    LimitParam,
    OrderIdListQuery,
    Page,
    decode_cursor,
    encode_cursor,
)
from shared.problems import ProblemError, problem_responses
from system_apis.wms.events import fulfillment_released, pick_confirmed, shipment_dispatched
from system_apis.wms.port import (
    DuplicateLine,
    InsufficientStock,
    InvalidState,
    NotFound,
    OverShipment,
    UnknownWarehouse,
    WmsError,
    WmsPort,
)
from system_apis.wms.schemas import (
    FulfillmentOrder,
    FulfillmentOrderIn,
    Pick,
    PickIn,
    Shipment,
    ShipmentIn,
)

# How each refusal of the WMS reaches the caller: (status, problem slug).
_PROBLEMS: dict[type[WmsError], tuple[int, str]] = {
    NotFound: (404, "fulfillment-order-not-found"),
    UnknownWarehouse: (422, "unknown-warehouse"),
    DuplicateLine: (422, "duplicate-line"),
    OverShipment: (409, "over-shipment"),
    InsufficientStock: (409, "insufficient-stock"),
    InvalidState: (409, "invalid-fulfillment-status"),
}


def _problem(exc: WmsError) -> ProblemError:
    status, slug = _PROBLEMS[type(exc)]
    return ProblemError(status, slug, str(exc))


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
        data: FulfillmentOrderIn,
        wms: WmsPort,
        idempotency: IdempotencyStore,
        principal: Principal,
        idempotency_key: IdempotencyKey,
    ) -> Response[FulfillmentOrder]:
        async def effect(tx: Tx) -> tuple[int, FulfillmentOrder]:
            try:
                order = await wms.create_fulfillment_order(tx, data)
            except (UnknownWarehouse, DuplicateLine) as exc:
                raise _problem(exc) from exc
            tx.emit(STREAM_WMS, fulfillment_released(order))
            return 201, order

        return await idempotency.run_once(
            client_id=principal.client_id, key=idempotency_key, payload=data, effect=effect
        )

    @get(
        "/",
        operation_id="listFulfillmentOrders",
        summary="List fulfillment orders, optionally of some orders",
        responses=problem_responses(),
        **requires("wms:read"),
    )
    async def list_fulfillment_orders(
        self,
        wms: WmsPort,
        order_id: OrderIdListQuery = (),  # type: ignore[assignment]
        cursor: CursorParam = None,
        limit: LimitParam = 50,
    ) -> Page[FulfillmentOrder]:
        found = await wms.list_fulfillment_orders(list(order_id), decode_cursor(cursor), limit + 1)
        more = len(found) > limit
        page = found[:limit]
        return Page(page, encode_cursor(page[-1].fulfillment_order_id) if more else None)

    @get(
        "/{fulfillment_order_id:str}",
        operation_id="getFulfillmentOrder",
        summary="Read one fulfillment order",
        responses=problem_responses(404),
        **requires("wms:read"),
    )
    async def get_fulfillment_order(
        self, fulfillment_order_id: IdParam, wms: WmsPort
    ) -> FulfillmentOrder:
        order = await wms.get_fulfillment_order(fulfillment_order_id)
        if order is None:
            raise _problem(NotFound(f"No fulfillment order {fulfillment_order_id}."))
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
        self, fulfillment_order_id: IdParam, wms: WmsPort, idempotency: IdempotencyStore
    ) -> FulfillmentOrder:
        try:
            async with idempotency.db.transaction() as tx:
                return await wms.cancel_fulfillment_order(tx, fulfillment_order_id)
        except (NotFound, InvalidState) as exc:
            raise _problem(exc) from exc

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
        data: ShipmentIn,
        wms: WmsPort,
        idempotency: IdempotencyStore,
        principal: Principal,
        idempotency_key: IdempotencyKey,
    ) -> Response[Shipment]:
        async def effect(tx: Tx) -> tuple[int, Shipment]:
            try:
                shipment = await wms.create_shipment(tx, fulfillment_order_id, data)
            except WmsError as exc:
                raise _problem(exc) from exc
            version = await wms.stock_version(tx, shipment.warehouse_id)
            tx.emit(STREAM_WMS, shipment_dispatched(shipment, version))
            return 201, shipment

        # The target is part of the request: one key reused on another order is a 422.
        payload = {"fulfillment_order_id": fulfillment_order_id, "shipment": data}
        return await idempotency.run_once(
            client_id=principal.client_id, key=idempotency_key, payload=payload, effect=effect
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
        wms: WmsPort,
        cursor: CursorParam = None,
        limit: LimitParam = 100,
    ) -> Page[Shipment]:
        if await wms.get_fulfillment_order(fulfillment_order_id) is None:
            raise _problem(NotFound(f"No fulfillment order {fulfillment_order_id}."))
        # A fulfillment order has few shipments: page over them in shipment id order.
        after = decode_cursor(cursor)
        shipments = sorted(
            await wms.list_shipments(fulfillment_order_id), key=lambda s: s.shipment_id
        )
        remaining = [s for s in shipments if after is None or s.shipment_id > after]
        page = remaining[:limit]
        more = len(remaining) > limit
        return Page(page, encode_cursor(page[-1].shipment_id) if more else None)

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
        data: PickIn,
        wms: WmsPort,
        idempotency: IdempotencyStore,
        principal: Principal,
        idempotency_key: IdempotencyKey,
    ) -> Response[Pick]:
        """Picked stock stays on hand but is held for the order until it ships; the
        shipment takes the picked lots first."""

        async def effect(tx: Tx) -> tuple[int, Pick]:
            try:
                pick = await wms.confirm_pick(tx, fulfillment_order_id, data)
            except WmsError as exc:
                raise _problem(exc) from exc
            version = await wms.stock_version(tx, pick.warehouse_id)
            tx.emit(STREAM_WMS, pick_confirmed(pick, version))
            return 201, pick

        payload = {"fulfillment_order_id": fulfillment_order_id, "pick": data}
        return await idempotency.run_once(
            client_id=principal.client_id, key=idempotency_key, payload=payload, effect=effect
        )
