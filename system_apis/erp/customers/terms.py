"""What the ERP says about a customer's order in one answer: the customer (status,
group, terms, ship-tos), the prices it pays for the skus, and its credit exposure.
The order process reads this on every order; one call instead of three. Its queue of
placements reads the customers of a turn's orders in one call (``/order-terms/batch``,
decision 0061)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from shared.auth.litestar_auth import requires
from shared.auth.principal import Principal
from shared.models import SKU_PATTERN, Identifier, IdParam, ItemRefusal, Sku, query_filter
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


class OrderTermsReadIn(msgspec.Struct, forbid_unknown_fields=True):
    customer_id: Identifier
    skus: Annotated[list[Sku], msgspec.Meta(min_length=1, max_length=100)]


class OrderTermsBatchIn(msgspec.Struct, forbid_unknown_fields=True):
    reads: Annotated[list[OrderTermsReadIn], msgspec.Meta(min_length=1, max_length=100)]


class OrderTermsBatchResult(msgspec.Struct, omit_defaults=True):
    """Per read, in the batch's order: the terms, or the refusal its single read
    would answer (404 for an unknown customer)."""

    customer_id: str
    terms: OrderTerms | None = None
    refusal: ItemRefusal | None = None


class OrderTermsBatch(msgspec.Struct):
    results: list[OrderTermsBatchResult]


async def _order_terms(
    erp: ErpPort, principal: Principal, customer_id: str, skus: list[str]
) -> OrderTerms:
    customer = (
        await erp.get_customer(customer_id) if principal.may_see_customer(customer_id) else None
    )
    prices = await erp.prices_for_customer(customer_id, sorted(set(skus))) if customer else None
    credit = await erp.credit_exposure(customer_id) if customer else None
    if customer is None or prices is None or credit is None:
        raise Refusal(404, "customer-not-found", f"No customer {customer_id}.")
    return OrderTerms(customer=customer, prices=prices, credit=credit)


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
        return await _order_terms(erp, principal, customer_id, sku)


class OrderTermsBatchController(Controller):
    path = "/erp/v1/order-terms/batch"
    tags = ["customers"]

    @post(
        "/",
        operation_id="readOrderTermsBatch",
        summary="Up to 100 customers' order terms in one read, each as its GET would answer",
        status_code=200,
        responses=problem_responses(),
        **requires("erp:read"),
    )
    async def read_order_terms_batch(
        self,
        data: JSONBody[OrderTermsBatchIn],
        erp: NamedDependency[ErpPort],
        principal: NamedDependency[Principal],
    ) -> OrderTermsBatch:
        """A read (it changes nothing; POST only to carry the reads): each read is
        answered as ``GET /erp/v1/customers/{customer_id}/order-terms`` with its skus
        would, or with the refusal that GET would answer. A customer may be read more
        than once (more than 100 skus)."""
        results: list[OrderTermsBatchResult] = []
        for read in data.reads:
            try:
                terms = await _order_terms(erp, principal, read.customer_id, read.skus)
            except Refusal as refused:
                results.append(
                    OrderTermsBatchResult(read.customer_id, refusal=ItemRefusal.of(refused))
                )
            else:
                results.append(OrderTermsBatchResult(read.customer_id, terms=terms))
        return OrderTermsBatch(results)
