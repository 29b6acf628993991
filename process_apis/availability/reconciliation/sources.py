"""The other two figures, read through the ERP's and the WMS's HTTP APIs with the
service's own token (never their databases): on-hand per (sku, warehouse) and when it
last changed there."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Protocol

import msgspec

from shared.http import Downstream
from shared.refusals import Refusal

Figures = dict[tuple[str, str], tuple[int, datetime]]


class StockSources(Protocol):
    async def erp_on_hand(self) -> Figures: ...
    async def wms_on_hand(self) -> Figures: ...


class _Row(msgspec.Struct):
    sku: str
    warehouse_id: str
    on_hand: int
    updated_at: datetime


class _Page(msgspec.Struct):
    items: list[_Row]
    next_cursor: str | None = None


async def _pages(downstream: Downstream, path: str) -> AsyncIterator[list[_Row]]:
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 500}
        if cursor:
            params["cursor"] = cursor
        response = await downstream.request("GET", path, params=params)
        if response.status_code != 200:
            raise Refusal(
                503,
                "downstream-unavailable",
                f"The {downstream.name} service answered {response.status_code} to {path}.",
            )
        page = msgspec.json.decode(response.content, type=_Page)
        yield page.items
        cursor = page.next_cursor
        if not cursor:
            return


async def _figures(downstream: Downstream, path: str) -> Figures:
    """On-hand summed per (sku, warehouse) over lots, with the latest change."""
    found: Figures = {}
    async for rows in _pages(downstream, path):
        for row in rows:
            key = (row.sku, row.warehouse_id)
            quantity, changed = found.get(key, (0, row.updated_at))
            found[key] = (quantity + row.on_hand, max(changed, row.updated_at))
    return found


class HttpSources:
    def __init__(self, erp: Downstream, wms: Downstream) -> None:
        self.erp = erp
        self.wms = wms

    async def erp_on_hand(self) -> Figures:
        return await _figures(self.erp, "/erp/v1/inventory")

    async def wms_on_hand(self) -> Figures:
        return await _figures(self.wms, "/wms/v1/stock")
