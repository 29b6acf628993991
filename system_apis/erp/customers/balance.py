"""A customer's balance: invoices less credit notes less payments applied, with its
open and overdue invoices and the payments no invoice holds (its credit)."""

from __future__ import annotations

from litestar import Controller, get
from litestar.di import NamedDependency

from shared.auth.litestar_auth import requires
from shared.auth.principal import Principal
from shared.models import IdParam
from shared.problems import problem_responses
from shared.refusals import Refusal
from system_apis.erp.port import ErpPort
from system_apis.erp.schemas import CustomerBalance


class CustomerBalanceController(Controller):
    path = "/erp/v1/customers/{customer_id:str}/balance"
    tags = ["customers"]

    @get(
        "/",
        operation_id="getCustomerBalance",
        summary="A customer's balance (invoices - credit notes - payments applied), open "
        "and overdue invoices, unapplied credit",
        responses=problem_responses(404),
        **requires("erp:read"),
    )
    async def get_balance(
        self,
        customer_id: IdParam,
        erp: NamedDependency[ErpPort],
        principal: NamedDependency[Principal],
    ) -> CustomerBalance:
        """In the customer's currency; ``overdue`` sums the outstanding of invoices due
        before today (UTC); ``net`` = balance - unapplied_credit (may be negative)."""
        found = (
            await erp.customer_balance(customer_id)
            if principal.may_see_customer(customer_id)
            else None
        )
        if found is None:
            raise Refusal(404, "customer-not-found", f"No customer {customer_id}.")
        return found
