from __future__ import annotations

from typing import Annotated

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, QueryParameter

from shared.auth.litestar_auth import requires
from shared.auth.principal import Principal
from shared.db import Tx
from shared.idempotency import IdempotencyStore, OptionalIdempotencyKey
from shared.models import (
    PRINTABLE_PATTERN,
    CursorParam,
    LimitParam,
    Page,
    SkuListQuery,
    SkuParam,
)
from shared.paging import decode_cursor, keyset_page
from shared.problems import problem_responses
from shared.refusals import Refusal
from system_apis.erp.port import ErpPort
from system_apis.erp.schemas import Item, ItemIn

SearchQuery = Annotated[
    str | None,
    QueryParameter(
        name="search",
        min_length=1,
        max_length=100,
        pattern=PRINTABLE_PATTERN,
        description="Only items whose sku or name contains it (case-insensitive).",
    ),
]


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
        data: JSONBody[ItemIn],
        erp: NamedDependency[ErpPort],
        idempotency: NamedDependency[IdempotencyStore],
        principal: NamedDependency[Principal],
        idempotency_key: OptionalIdempotencyKey = None,
    ) -> Response[Item]:
        async def effect(tx: Tx) -> tuple[int, Item]:
            return 201, await erp.create_item(tx, data)

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
        erp: NamedDependency[ErpPort],
        sku: SkuListQuery = (),  # type: ignore[assignment]
        search: SearchQuery = None,
        cursor: CursorParam = None,
        limit: LimitParam = 50,
    ) -> Page[Item]:
        found = await erp.list_items(list(sku), decode_cursor(cursor), limit + 1, search)
        return keyset_page(found, limit, key=lambda i: i.sku)

    @get(
        "/{sku:str}",
        operation_id="getItem",
        summary="Read one item",
        responses=problem_responses(404),
        **requires("erp:read"),
    )
    async def get_item(self, sku: SkuParam, erp: NamedDependency[ErpPort]) -> Item:
        item = await erp.get_item(sku)
        if item is None:
            raise Refusal(404, "item-not-found", f"No item {sku}.")
        return item
