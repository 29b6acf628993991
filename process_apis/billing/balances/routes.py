from __future__ import annotations

from litestar import Controller, get
from litestar.di import NamedDependency

from process_apis.billing.balances.schemas import Balance
from process_apis.billing.balances.service import BalanceService
from shared.auth.litestar_auth import requires
from shared.auth.principal import Principal
from shared.models import IdParam
from shared.problems import problem_responses


class BalanceController(Controller):
    path = "/billing/v1/customers"
    tags = ["statements"]

    @get(
        "/{customer_id:str}/balance",
        operation_id="getCustomerBalance",
        summary="A customer's balance: outstanding, overdue, open invoices, unapplied credit",
        responses=problem_responses(404, 502, 503),
        **requires("billing:read"),
    )
    async def get_balance(
        self,
        customer_id: IdParam,
        balances: NamedDependency[BalanceService],
        principal: NamedDependency[Principal],
    ) -> Balance:
        """Read from the ERP as of now. Another customer's (or an unknown one): 404
        ``customer-not-found``."""
        return await balances.balance(principal, customer_id)
