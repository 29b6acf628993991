from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.params import QueryParameter

from process_apis.availability.positions import queries
from process_apis.availability.schemas import ItemAvailability, Movement
from shared.auth.litestar_auth import requires
from shared.db import Database
from shared.models import (
    SKU_PATTERN,
    CursorParam,
    LimitParam,
    Page,
    Sku,
    SkuParam,
    decode_cursor,
    encode_cursor,
)
from shared.problems import problem_responses

SkusQuery = Annotated[
    list[Sku],
    QueryParameter(
        name="sku",
        min_items=1,
        max_items=100,
        schema_extra={
            "items": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": SKU_PATTERN}
        },
    ),
]


def _after(cursor: str | None) -> int:
    """The movement id to continue after; a cursor we did not issue starts at the top
    (house rule: paging never fails on a cursor)."""
    raw = decode_cursor(cursor)
    return int(raw) if raw and raw.isdigit() and len(raw) <= 18 else 0


class ItemController(Controller):
    path = "/availability/v1/items"
    tags = ["availability"]

    @get(
        "/",
        operation_id="listItemAvailability",
        summary="Available-to-promise of several items at once",
        responses=problem_responses(),
        **requires("inventory:read"),
    )
    async def list_items(
        self,
        db: Database,
        sku: SkusQuery,
    ) -> Page[ItemAvailability]:
        async with db.read() as conn:
            return Page(await queries.items(conn, sku), None)

    @get(
        "/{sku:str}",
        operation_id="getItemAvailability",
        summary="Available-to-promise of one item, per location, with its source positions",
        responses=problem_responses(),
        **requires("inventory:read"),
    )
    async def get_item(self, sku: SkuParam, db: Database) -> ItemAvailability:
        async with db.read() as conn:
            return (await queries.items(conn, [sku]))[0]

    @get(
        "/{sku:str}/movements",
        operation_id="listItemMovements",
        summary="The movement ledger of one item, oldest first",
        responses=problem_responses(),
        **requires("inventory:read"),
    )
    async def list_movements(
        self, sku: SkuParam, db: Database, cursor: CursorParam = None, limit: LimitParam = 50
    ) -> Page[Movement]:
        async with db.read() as conn:
            found = await queries.item_movements(conn, sku, _after(cursor), limit + 1)
        more = len(found) > limit
        page = found[:limit]
        return Page(page, encode_cursor(str(page[-1].movement_id)) if more else None)
