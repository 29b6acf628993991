"""Changes to a released fulfillment order: picked units put back (put-aways), lines
cancelled by the order, and lines shorted by the warehouse."""

from __future__ import annotations

from litestar import Controller, Response, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from shared.auth.litestar_auth import requires
from shared.auth.principal import Principal
from shared.db import Tx
from shared.events.catalog import STREAM_WMS
from shared.idempotency import IdempotencyKey, IdempotencyStore
from shared.models import IdParam
from shared.problems import problem_responses
from system_apis.wms.events import inventory_adjusted, pick_put_away, pick_shorted
from system_apis.wms.port import WmsPort
from system_apis.wms.schemas import (
    FulfillmentOrder,
    LineCancellationIn,
    PutAway,
    PutAwayIn,
    Shortage,
    ShortageIn,
)


class FulfillmentChangeController(Controller):
    path = "/wms/v1/fulfillment-orders/{fulfillment_order_id:str}"
    tags = ["fulfillment"]

    @post(
        "/put-aways",
        operation_id="putAwayPicked",
        summary="Return picked, unshipped units to free stock, emits pick.put_away",
        responses=problem_responses(404, 409, 422),
        **requires("wms:write"),
    )
    async def put_away(
        self,
        fulfillment_order_id: IdParam,
        data: JSONBody[PutAwayIn],
        wms: NamedDependency[WmsPort],
        idempotency: NamedDependency[IdempotencyStore],
        principal: NamedDependency[Principal],
        idempotency_key: IdempotencyKey,
    ) -> Response[PutAway]:
        """The newest picks are undone first (of the named lot, when a line names one).
        More than the order has picked and not shipped is refused whole (409
        ``/problems/over-put-away``). Once everything is put away the order may be
        cancelled."""

        async def effect(tx: Tx) -> tuple[int, PutAway]:
            put_away = await wms.put_away(tx, fulfillment_order_id, data)
            version = await wms.stock_version(tx, put_away.warehouse_id)
            tx.emit(STREAM_WMS, pick_put_away(put_away, version))
            return 201, put_away

        payload = {"fulfillment_order_id": fulfillment_order_id, "put_away": data}
        return await idempotency.run_once(
            client_id=principal.client_id, key=idempotency_key, payload=payload, effect=effect
        )

    @post(
        "/line-cancellations",
        operation_id="cancelFulfillmentLines",
        summary="Lower lines of a fulfillment order by units not yet picked or shipped",
        status_code=200,
        responses=problem_responses(404, 409, 422),
        **requires("wms:write"),
    )
    async def cancel_lines(
        self,
        fulfillment_order_id: IdParam,
        data: JSONBody[LineCancellationIn],
        wms: NamedDependency[WmsPort],
        idempotency: NamedDependency[IdempotencyStore],
        principal: NamedDependency[Principal],
        idempotency_key: IdempotencyKey,
    ) -> Response[FulfillmentOrder]:
        """Each line's quantity goes down by ``quantity``, at most what is open and
        unpicked (409 ``/problems/quantity-not-open`` with ``open_quantity``: put picked
        units away first; shipped units never come back). An order left with nothing to
        ship and nothing shipped is ``cancelled``; one whose remaining units all shipped
        is ``shipped``. Stock is untouched and no event is emitted: the caller decided."""

        async def effect(tx: Tx) -> tuple[int, FulfillmentOrder]:
            return 200, await wms.cancel_lines(tx, fulfillment_order_id, data)

        payload = {"fulfillment_order_id": fulfillment_order_id, "cancellation": data}
        return await idempotency.run_once(
            client_id=principal.client_id, key=idempotency_key, payload=payload, effect=effect
        )

    @post(
        "/shortages",
        operation_id="reportShortage",
        summary="Report units the warehouse cannot find (short pick), "
        "emits inventory.adjusted and pick.shorted",
        responses=problem_responses(404, 409, 422),
        **requires("wms:write"),
    )
    async def report_shortage(
        self,
        fulfillment_order_id: IdParam,
        data: JSONBody[ShortageIn],
        wms: NamedDependency[WmsPort],
        idempotency: NamedDependency[IdempotencyStore],
        principal: NamedDependency[Principal],
        idempotency_key: IdempotencyKey,
    ) -> Response[Shortage]:
        """The lines shrink by the shorted units (at most what is open and unpicked, 409
        otherwise), and up to that many of the sku's free units at the warehouse move to
        ``hold`` until counted: an adjustment with reason ``short_pick`` (two lines per
        lot: available down, hold up), emitted as ``inventory.adjusted`` before
        ``pick.shorted`` in the same transaction."""

        async def effect(tx: Tx) -> tuple[int, Shortage]:
            shortage, adjustment = await wms.report_shortage(tx, fulfillment_order_id, data)
            version = await wms.stock_version(tx, shortage.warehouse_id)
            if adjustment is not None:
                # The adjustment took the version before the shortage's own.
                tx.emit(STREAM_WMS, inventory_adjusted(adjustment, version - 1))
            tx.emit(STREAM_WMS, pick_shorted(shortage, version))
            return 201, shortage

        payload = {"fulfillment_order_id": fulfillment_order_id, "shortage": data}
        return await idempotency.run_once(
            client_id=principal.client_id, key=idempotency_key, payload=payload, effect=effect
        )
