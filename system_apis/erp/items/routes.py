from __future__ import annotations

from litestar import Controller, Response, get, post

from shared.auth.litestar_auth import requires
from shared.auth.principal import Principal
from shared.db import Tx
from shared.idempotency import IdempotencyStore, OptionalIdempotencyKey
from shared.models import (
    CursorParam,
    LimitParam,
    Page,
    SkuListQuery,
    SkuParam,
    decode_cursor,
    encode_cursor,
)
from shared.problems import ProblemError, problem_responses
from system_apis.erp.port import DuplicateRecord, ErpPort
from system_apis.erp.schemas import Item, ItemIn


class ItemController(Controller):
    path = "/erp/v1/items"
    tags = ["items"]

    @post(
        "/",
        operation_id="createItem",
        summary="Create an item with its list price",
        responses=problem_responses(409, 422),
        **requires("erp:write"),
    )
    async def create_item(
        self,
        data: ItemIn,
        erp: ErpPort,
        idempotency: IdempotencyStore,
        principal: Principal,
        idempotency_key: OptionalIdempotencyKey = None,
    ) -> Response[Item]:
        async def effect(tx: Tx) -> tuple[int, Item]:
            try:
                return 201, await erp.create_item(tx, data)
            except DuplicateRecord as exc:
                raise ProblemError(
                    409, "duplicate-item", f"Item {data.sku} already exists."
                ) from exc

        return await idempotency.run_once(
            client_id=principal.client_id, key=idempotency_key, payload=data, effect=effect
        )

    @get(
        "/",
        operation_id="listItems",
        summary="List items",
        responses=problem_responses(),
        **requires("erp:read"),
    )
    async def list_items(
        self,
        erp: ErpPort,
        sku: SkuListQuery = (),  # type: ignore[assignment]
        cursor: CursorParam = None,
        limit: LimitParam = 50,
    ) -> Page[Item]:
        found = await erp.list_items(list(sku), decode_cursor(cursor), limit + 1)
        more = len(found) > limit
        page = found[:limit]
        return Page(page, encode_cursor(page[-1].sku) if more else None)

    @get(
        "/{sku:str}",
        operation_id="getItem",
        summary="Read one item",
        responses=problem_responses(404),
        **requires("erp:read"),
    )
    async def get_item(self, sku: SkuParam, erp: ErpPort) -> Item:
        item = await erp.get_item(sku)
        if item is None:
            raise ProblemError(404, "item-not-found", f"No item {sku}.")
        return item
