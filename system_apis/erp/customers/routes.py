from __future__ import annotations

from litestar import Controller, Response, get, patch, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from shared.auth.litestar_auth import requires
from shared.auth.principal import Principal
from shared.db import Tx
from shared.idempotency import IdempotencyStore, OptionalIdempotencyKey
from shared.models import IdParam
from shared.problems import problem_responses
from shared.refusals import Refusal
from system_apis.erp.port import ErpPort
from system_apis.erp.schemas import CreditExposure, Customer, CustomerIn, CustomerPatch


def _not_found(customer_id: str) -> Refusal:
    return Refusal(404, "customer-not-found", f"No customer {customer_id}.")


class CustomerController(Controller):
    path = "/erp/v1/customers"
    tags = ["customers"]

    @post(
        "/",
        operation_id="createCustomer",
        summary="Create a customer with a credit limit",
        responses=problem_responses(409, 422),
        **requires("erp:write"),
    )
    async def create_customer(
        self,
        data: JSONBody[CustomerIn],
        erp: NamedDependency[ErpPort],
        idempotency: NamedDependency[IdempotencyStore],
        principal: NamedDependency[Principal],
        idempotency_key: OptionalIdempotencyKey = None,
    ) -> Response[Customer]:
        async def effect(tx: Tx) -> tuple[int, Customer]:
            return 201, await erp.create_customer(tx, data)

        return await idempotency.run_once(
            client_id=principal.client_id, key=idempotency_key, payload=data, effect=effect
        )

    @get(
        "/{customer_id:str}",
        operation_id="getCustomer",
        summary="Read one customer",
        responses=problem_responses(404),
        **requires("erp:read"),
    )
    async def get_customer(
        self,
        customer_id: IdParam,
        erp: NamedDependency[ErpPort],
        principal: NamedDependency[Principal],
    ) -> Customer:
        customer = (
            await erp.get_customer(customer_id) if principal.may_see_customer(customer_id) else None
        )
        if customer is None:
            raise _not_found(customer_id)
        return customer

    @patch(
        "/{customer_id:str}",
        operation_id="updateCustomer",
        summary="Change a customer's name, credit limit, status, group, terms or ship-tos",
        responses=problem_responses(404, 422),
        **requires("erp:write"),
    )
    async def update_customer(
        self,
        customer_id: IdParam,
        data: JSONBody[CustomerPatch],
        erp: NamedDependency[ErpPort],
        idempotency: NamedDependency[IdempotencyStore],
        principal: NamedDependency[Principal],
    ) -> Customer:
        """Absent fields keep their values; ``ship_tos`` replaces the whole list. A credit
        limit in another currency is 422 ``currency-change`` and changes nothing."""
        if not principal.may_see_customer(customer_id):
            raise _not_found(customer_id)
        async with idempotency.db.transaction() as tx:
            return await erp.update_customer(tx, customer_id, data)

    @get(
        "/{customer_id:str}/credit",
        operation_id="getCreditExposure",
        summary="A customer's credit limit, exposure (open orders + unpaid invoices), available",
        responses=problem_responses(404),
        **requires("erp:read"),
    )
    async def get_credit(
        self,
        customer_id: IdParam,
        erp: NamedDependency[ErpPort],
        principal: NamedDependency[Principal],
    ) -> CreditExposure:
        """``open_orders`` sums the open sales orders' value not yet invoiced (net),
        ``unpaid_invoices`` the customer's outstanding invoices less its unapplied
        credit (at least 0); ``available`` may be negative."""
        found = (
            await erp.credit_exposure(customer_id)
            if principal.may_see_customer(customer_id)
            else None
        )
        if found is None:
            raise _not_found(customer_id)
        return found
