from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, get
from litestar.params import QueryParameter

from shared.auth.litestar_auth import requires
from shared.models import (
    ID_PATTERN,
    CursorParam,
    LimitParam,
    Page,
    SkuListQuery,
    decode_cursor,
    encode_cursor,
)
from shared.problems import problem_responses
from system_apis.wms.port import WmsPort
from system_apis.wms.schemas import StockPosition

WarehouseQuery = Annotated[
    str | None,
    QueryParameter(
        name="warehouse_id", required=False, min_length=1, max_length=64, pattern=ID_PATTERN
    ),
]


def _after(cursor: str | None) -> tuple[str, str, str] | None:
    """The (warehouse, sku, lot) to continue after. A cursor we did not issue is just a
    position in the key order (house rule: paging never fails on a cursor)."""
    raw = decode_cursor(cursor)
    if raw is None:
        return None
    try:
        warehouse_id, sku, lot = msgspec.json.decode(raw, type=tuple[str, str, str])
    except msgspec.DecodeError:
        return raw, "", ""
    return warehouse_id, sku, lot


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
        wms: WmsPort,
        sku: SkuListQuery = (),  # type: ignore[assignment]
        warehouse_id: WarehouseQuery = None,
        cursor: CursorParam = None,
        limit: LimitParam = 50,
    ) -> Page[StockPosition]:
        found = await wms.list_stock(list(sku), warehouse_id, _after(cursor), limit + 1)
        more = len(found) > limit
        page = found[:limit]
        if not more:
            return Page(page, None)
        last = page[-1]
        key = msgspec.json.encode([last.warehouse_id, last.sku, last.lot or ""]).decode()
        return Page(page, encode_cursor(key))
