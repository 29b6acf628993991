from __future__ import annotations

from litestar import Controller, Response, get, post
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
from system_apis.erp.schemas import Customer, CustomerIn


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
            raise Refusal(404, "customer-not-found", f"No customer {customer_id}.")
        return customer
