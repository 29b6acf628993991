"""The catalog read from the ERP (items, then the customer's prices for the page's
skus, at most 100 a call). Whose price: a client bound to a customer always gets its
own customer's (naming another customer is 403 ``customer-not-permitted``, decided from
the token before any lookup); staff get the named customer's, or the list price."""

from __future__ import annotations

from typing import Any

from process_apis.order_to_ship.catalog.schemas import CatalogItem
from process_apis.order_to_ship.customers.service import customer_not_found, erp_read
from shared.auth.principal import Principal
from shared.http import Downstream
from shared.models import Money, Page
from shared.refusals import Refusal

PRICE_BATCH = 100  # the ERP's prices route takes up to 100 skus


def priced_for(principal: Principal, customer_id: str | None) -> str | None:
    """Whose price the caller gets (None: the list price)."""
    if principal.customer_id is None:
        return customer_id
    if customer_id not in (None, principal.customer_id):
        raise Refusal(
            403,
            "customer-not-permitted",
            f"This client sees the prices of customer {principal.customer_id} only.",
        )
    return principal.customer_id


def _item(item: dict[str, Any], price: dict[str, Any] | None) -> CatalogItem:
    list_price = Money(int(item["unit_price"]["amount_minor"]), item["unit_price"]["currency"])
    if price is None:
        return CatalogItem(
            sku=item["sku"],
            name=item["name"],
            base_uom=item["base_uom"],
            tax_class=item["tax_class"],
            list_price=list_price,
            price=list_price,
        )
    return CatalogItem(
        sku=item["sku"],
        name=item["name"],
        base_uom=item["base_uom"],
        tax_class=item["tax_class"],
        list_price=list_price,
        price=Money(int(price["unit_price"]["amount_minor"]), price["unit_price"]["currency"]),
        price_source=price["source"],
    )


class CatalogService:
    def __init__(self, erp: Downstream) -> None:
        self.erp = erp

    async def _prices(self, customer_id: str | None, skus: list[str]) -> dict[str, Any]:
        """The customer's price per sku (its own or the list price, as the ERP says)."""
        if customer_id is None or not skus:
            return {}
        found: dict[str, Any] = {}
        for start in range(0, len(skus), PRICE_BATCH):
            chunk = skus[start : start + PRICE_BATCH]
            answer = await erp_read(
                self.erp,
                f"/erp/v1/customers/{customer_id}/prices",
                params=[("sku", sku) for sku in chunk] + [("limit", str(PRICE_BATCH))],
            )
            if answer is None:
                raise customer_not_found(customer_id)
            found |= {price["sku"]: price for price in answer["items"]}
        return found

    async def items(
        self,
        principal: Principal,
        customer_id: str | None,
        search: str | None,
        cursor: str | None,
        limit: int,
    ) -> Page[CatalogItem]:
        whose = priced_for(principal, customer_id)
        params: dict[str, Any] = {"limit": limit}
        if search:
            params["search"] = search
        if cursor:
            params["cursor"] = cursor  # the ERP's keyset cursor (by sku), passed through
        page = await erp_read(self.erp, "/erp/v1/items", params=params)
        assert page is not None  # a list is never 404
        prices = await self._prices(whose, [item["sku"] for item in page["items"]])
        return Page(
            [_item(item, prices.get(item["sku"])) for item in page["items"]],
            page.get("next_cursor"),
        )

    async def item(self, principal: Principal, sku: str, customer_id: str | None) -> CatalogItem:
        whose = priced_for(principal, customer_id)
        found = await erp_read(self.erp, f"/erp/v1/items/{sku}")
        if found is None:
            raise Refusal(404, "item-not-found", f"No item {sku}.")
        prices = await self._prices(whose, [sku])
        return _item(found, prices.get(sku))
