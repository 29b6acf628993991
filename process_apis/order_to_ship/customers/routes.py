"""The customer's account (decision in docs/decisions: the portal's batch reads)."""

from __future__ import annotations

from litestar import Controller, get
from litestar.di import NamedDependency

from process_apis.order_to_ship.customers.schemas import Account
from process_apis.order_to_ship.customers.service import AccountService
from shared.auth.litestar_auth import requires
from shared.auth.principal import Principal
from shared.models import IdParam
from shared.problems import problem_responses


class AccountController(Controller):
    path = "/orders/v1/customers"
    tags = ["customers"]

    @get(
        "/{customer_id:str}/account",
        operation_id="getCustomerAccount",
        summary="A customer's account: status, terms, credit limit, exposure, ship-tos",
        responses=problem_responses(404, 502, 503),
        **requires("orders:read"),
    )
    async def get_account(
        self,
        customer_id: IdParam,
        accounts: NamedDependency[AccountService],
        principal: NamedDependency[Principal],
    ) -> Account:
        """Read from the ERP as of now. Another customer's (or an unknown one): 404
        ``customer-not-found``."""
        return await accounts.account(principal, customer_id)
