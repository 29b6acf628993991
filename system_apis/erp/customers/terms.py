"""What the ERP says about a customer's order in one answer: the customer (status,
group, terms, ship-tos), the prices it pays for the skus, and its credit exposure.
The order process reads this on every order; one call instead of three."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency

from shared.auth.litestar_auth import requires
from shared.auth.principal import Principal
from shared.models import SKU_PATTERN, IdParam, Sku, query_filter
from shared.problems import problem_responses
from shared.refusals import Refusal
from system_apis.erp.port import ErpPort
from system_apis.erp.schemas import CreditExposure, Customer, PriceForCustomer

SkusQuery = Annotated[
    list[Sku], query_filter(SKU_PATTERN, name="sku", many=True, required=True, min_items=1)
]


class OrderTerms(msgspec.Struct):
    customer: Customer
    prices: list[PriceForCustomer]  # by sku; an unknown sku is left out
    credit: CreditExposure


class OrderTermsController(Controller):
    path = "/erp/v1/customers/{customer_id:str}/order-terms"
    tags = ["customers"]

    @get(
        "/",
        operation_id="getOrderTerms",
        summary="A customer, its prices for some skus and its credit exposure, in one read",
        responses=problem_responses(404),
        **requires("erp:read"),
    )
    async def get_order_terms(
        self,
        customer_id: IdParam,
        sku: SkusQuery,
        erp: NamedDependency[ErpPort],
        principal: NamedDependency[Principal],
    ) -> OrderTerms:
        """The same figures as ``GET .../{customer_id}``, ``.../prices`` and
        ``.../credit`` (up to 100 skus)."""
        customer = (
            await erp.get_customer(customer_id) if principal.may_see_customer(customer_id) else None
        )
        prices = await erp.prices_for_customer(customer_id, sorted(set(sku))) if customer else None
        credit = await erp.credit_exposure(customer_id) if customer else None
        if customer is None or prices is None or credit is None:
            raise Refusal(404, "customer-not-found", f"No customer {customer_id}.")
        return OrderTerms(customer=customer, prices=prices, credit=credit)
