"""The catalog with the customer's price (the portal's ``item`` and ``items``)."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from process_apis.order_to_ship.catalog.schemas import CatalogItem
from process_apis.order_to_ship.catalog.service import CatalogService
from shared.auth.litestar_auth import requires
from shared.auth.principal import Principal
from shared.models import (
    ID_PATTERN,
    PRINTABLE_PATTERN,
    CursorParam,
    LimitParam,
    Page,
    SkuParam,
    query_filter,
)
from shared.problems import problem_responses

PricedFor = Annotated[
    str | None,
    query_filter(
        ID_PATTERN,
        name="customer_id",
        description=(
            "Whose price (staff; without it the list price). A client bound to a customer "
            "always gets its own customer's price; naming another is 403."
        ),
    ),
]
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


class CatalogController(Controller):
    path = "/orders/v1/catalog/items"
    tags = ["catalog"]

    @get(
        "/",
        operation_id="listCatalogItems",
        summary="The catalog with the customer's price, optionally searched by sku or name",
        responses=problem_responses(403, 404, 502, 503),
        **requires("orders:read"),
    )
    async def list_items(
        self,
        catalog: NamedDependency[CatalogService],
        principal: NamedDependency[Principal],
        search: SearchQuery = None,
        customer_id: PricedFor = None,
        cursor: CursorParam = None,
        limit: LimitParam = 50,
    ) -> Page[CatalogItem]:
        """Ordered by sku. ``price`` is the customer's own price when it has one (
        ``price_source`` ``customer``), else the list price. An unknown customer named
        by staff: 404 ``customer-not-found``; another customer named by a bound client:
        403 ``customer-not-permitted``."""
        return await catalog.items(principal, customer_id, search, cursor, limit)

    @get(
        "/{sku:str}",
        operation_id="getCatalogItem",
        summary="One item with the customer's price",
        responses=problem_responses(403, 404, 502, 503),
        **requires("orders:read"),
    )
    async def get_item(
        self,
        sku: SkuParam,
        catalog: NamedDependency[CatalogService],
        principal: NamedDependency[Principal],
        customer_id: PricedFor = None,
    ) -> CatalogItem:
        """An unknown sku: 404 ``item-not-found``; whose price as in the list."""
        return await catalog.item(principal, sku, customer_id)
