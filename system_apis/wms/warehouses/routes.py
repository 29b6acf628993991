from __future__ import annotations

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from shared.auth.litestar_auth import requires
from shared.auth.principal import Principal
from shared.db import Tx
from shared.idempotency import IdempotencyStore, OptionalIdempotencyKey
from shared.models import CursorParam, LimitParam, Page
from shared.paging import decode_cursor, keyset_page
from shared.problems import problem_responses
from system_apis.wms.port import WmsPort
from system_apis.wms.schemas import Warehouse, WarehouseIn


class WarehouseController(Controller):
    path = "/wms/v1/warehouses"
    tags = ["warehouses"]

    @post(
        "/",
        operation_id="createWarehouse",
        summary="Register a warehouse",
        responses=problem_responses(409, 422),
        **requires("wms:write"),
    )
    async def create_warehouse(
        self,
        data: JSONBody[WarehouseIn],
        wms: NamedDependency[WmsPort],
        idempotency: NamedDependency[IdempotencyStore],
        principal: NamedDependency[Principal],
        idempotency_key: OptionalIdempotencyKey = None,
    ) -> Response[Warehouse]:
        async def effect(tx: Tx) -> tuple[int, Warehouse]:
            return 201, await wms.create_warehouse(tx, data)

        return await idempotency.run_once(
            client_id=principal.client_id, key=idempotency_key, payload=data, effect=effect
        )

    @get(
        "/",
        operation_id="listWarehouses",
        summary="List warehouses",
        responses=problem_responses(),
        **requires("wms:read"),
    )
    async def list_warehouses(
        self, wms: NamedDependency[WmsPort], cursor: CursorParam = None, limit: LimitParam = 50
    ) -> Page[Warehouse]:
        found = await wms.list_warehouses(decode_cursor(cursor), limit + 1)
        return keyset_page(found, limit, key=lambda w: w.warehouse_id)
