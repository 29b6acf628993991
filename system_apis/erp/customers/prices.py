"""Customer-specific prices over the items' list prices: a customer pays its own price
for a sku when it has one, the list price otherwise."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, delete, get, put
from litestar.di import NamedDependency
from litestar.params import JSONBody

from shared.auth.litestar_auth import requires
from shared.auth.principal import Principal
from shared.idempotency import IdempotencyStore
from shared.models import (
    SKU_PATTERN,
    CursorParam,
    IdParam,
    LimitParam,
    Page,
    Sku,
    SkuParam,
    query_filter,
)
from shared.paging import decode_cursor, keyset_page
from shared.problems import problem_responses
from shared.refusals import Refusal
from system_apis.erp.port import ErpPort
from system_apis.erp.schemas import CustomerPrice, CustomerPriceIn, PriceForCustomer

SkusQuery = Annotated[
    list[Sku], query_filter(SKU_PATTERN, name="sku", many=True, required=True, min_items=1)
]


def _visible(principal: Principal, customer_id: str) -> None:
    if not principal.may_see_customer(customer_id):
        raise Refusal(404, "customer-not-found", f"No customer {customer_id}.")


class CustomerPriceController(Controller):
    path = "/erp/v1/customers/{customer_id:str}/prices"
    tags = ["customers"]

    @get(
        "/",
        operation_id="listCustomerPrices",
        summary="The prices a customer pays for some skus (its own, else the list price)",
        responses=problem_responses(404),
        **requires("erp:read"),
    )
    async def list_prices(
        self,
        customer_id: IdParam,
        sku: SkusQuery,
        erp: NamedDependency[ErpPort],
        principal: NamedDependency[Principal],
        cursor: CursorParam = None,
        limit: LimitParam = 100,
    ) -> Page[PriceForCustomer]:
        """Up to 100 skus, ordered by sku; an unknown sku is left out. Paged like every
        list (the skus asked for usually fit one page)."""
        _visible(principal, customer_id)
        after = decode_cursor(cursor)
        wanted = sorted(s for s in set(sku) if after is None or s > after)
        found = await erp.prices_for_customer(customer_id, wanted)
        if found is None:
            raise Refusal(404, "customer-not-found", f"No customer {customer_id}.")
        return keyset_page(found, limit, key=lambda price: price.sku)

    @put(
        "/{sku:str}",
        operation_id="putCustomerPrice",
        summary="Set a customer's own price for a sku (over the list price)",
        responses=problem_responses(404, 422),
        **requires("erp:write"),
    )
    async def put_price(
        self,
        customer_id: IdParam,
        sku: SkuParam,
        data: JSONBody[CustomerPriceIn],
        erp: NamedDependency[ErpPort],
        idempotency: NamedDependency[IdempotencyStore],
        principal: NamedDependency[Principal],
    ) -> CustomerPrice:
        """The price is in the currency of the customer's credit limit (422
        ``currency-mismatch`` otherwise)."""
        _visible(principal, customer_id)
        async with idempotency.db.transaction() as tx:
            return await erp.set_customer_price(tx, customer_id, sku, data.unit_price)

    @delete(
        "/{sku:str}",
        operation_id="deleteCustomerPrice",
        summary="Drop a customer's own price for a sku (the list price applies again)",
        responses=problem_responses(404),
        **requires("erp:write"),
    )
    async def delete_price(
        self,
        customer_id: IdParam,
        sku: SkuParam,
        erp: NamedDependency[ErpPort],
        idempotency: NamedDependency[IdempotencyStore],
        principal: NamedDependency[Principal],
    ) -> None:
        _visible(principal, customer_id)
        async with idempotency.db.transaction() as tx:
            await erp.delete_customer_price(tx, customer_id, sku)
