from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency

from shared.auth.litestar_auth import requires
from shared.models import (
    ID_PATTERN,
    CursorParam,
    LimitParam,
    Page,
    SkuListQuery,
    query_filter,
)
from shared.paging import decode_key, keyset_page
from shared.problems import problem_responses
from system_apis.wms.port import WmsPort
from system_apis.wms.schemas import StockPosition

WarehouseQuery = Annotated[str | None, query_filter(ID_PATTERN, name="warehouse_id")]


class StockController(Controller):
    path = "/wms/v1/stock"
    tags = ["stock"]

    @get(
        "/",
        operation_id="listStock",
        summary="Physical on-hand stock by warehouse and lot",
        responses=problem_responses(),
        **requires("wms:read"),
    )
    async def list_stock(
        self,
        wms: NamedDependency[WmsPort],
        sku: SkuListQuery = (),  # type: ignore[assignment]
        warehouse_id: WarehouseQuery = None,
        cursor: CursorParam = None,
        limit: LimitParam = 50,
    ) -> Page[StockPosition]:
        # Ordered by (warehouse, sku, lot); a cursor we did not issue is a position in it.
        after = decode_key(cursor, 3)
        found = await wms.list_stock(list(sku), warehouse_id, after, limit + 1)
        return keyset_page(found, limit, key=lambda s: (s.warehouse_id, s.sku, s.lot or ""))
