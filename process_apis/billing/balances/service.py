"""A customer's balance, read from the ERP; a client bound to a customer reads its own
only (another's: 404, the answer of an unknown customer, decided before any lookup)."""

from __future__ import annotations

import msgspec

from process_apis.billing.balances.schemas import Balance
from process_apis.billing.erp import passed_through
from shared.auth.principal import Principal
from shared.http import Downstream
from shared.refusals import Refusal


class BalanceService:
    def __init__(self, erp: Downstream) -> None:
        self.erp = erp

    async def balance(self, principal: Principal, customer_id: str) -> Balance:
        missing = Refusal(404, "customer-not-found", f"No customer {customer_id}.")
        if not principal.may_see_customer(customer_id):
            raise missing
        response = await self.erp.request("GET", f"/erp/v1/customers/{customer_id}/balance")
        if response.status_code == 404:
            raise missing
        if not response.is_success:
            raise passed_through(response, f"the balance of {customer_id}")
        return msgspec.convert(response.json(), Balance, strict=False)
