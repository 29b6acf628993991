from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, get
from litestar.params import Parameter

from shared.auth.litestar_auth import requires
from shared.models import (
    CursorParam,
    IdParam,
    LimitParam,
    Page,
    SkuParam,
    decode_cursor,
    encode_cursor,
)
from shared.problems import ProblemError, problem_responses
from system_apis.wms.port import WmsPort
from system_apis.wms.schemas import StockPosition


def _after(cursor: str | None) -> tuple[str, str, str] | None:
    raw = decode_cursor(cursor)
    if raw is None:
        return None
    try:
        warehouse_id, sku, lot = msgspec.json.decode(raw, type=tuple[str, str, str])
    except msgspec.DecodeError:
        raise ProblemError(
            400, "invalid-cursor", "The cursor is not one this API issued."
        ) from None
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
        sku: Annotated[
            list[SkuParam] | None, Parameter(query="sku", required=False, max_items=100)
        ] = None,
        warehouse_id: Annotated[IdParam | None, Parameter(required=False)] = None,
        cursor: CursorParam = None,
        limit: LimitParam = 50,
    ) -> Page[StockPosition]:
        found = await wms.list_stock(sku, warehouse_id, _after(cursor), limit + 1)
        more = len(found) > limit
        page = found[:limit]
        if not more:
            return Page(page, None)
        last = page[-1]
        key = msgspec.json.encode([last.warehouse_id, last.sku, last.lot or ""]).decode()
        return Page(page, encode_cursor(key))
