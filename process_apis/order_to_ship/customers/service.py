"""The customer's account, read from the ERP (customer and credit) with this service's
token; a client bound to a customer reads its own only (another's: 404, as unknown)."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec

from process_apis.order_to_ship.customers.schemas import Account
from shared.auth.principal import Principal
from shared.http import Downstream
from shared.problems import ProblemError
from shared.refusals import Refusal


def customer_not_found(customer_id: str) -> Refusal:
    return Refusal(404, "customer-not-found", f"No customer {customer_id}.")


async def erp_read(erp: Downstream, path: str, params: Any = None) -> dict[str, Any] | None:
    """The ERP's answer (None: 404). Anything but success or 404 is a 502."""
    response = await erp.request("GET", path, params=params)
    if response.status_code == 404:
        return None
    if not response.is_success:
        raise ProblemError(
            502, "erp-error", f"GET {path}: the ERP answered {response.status_code}."
        )
    found: dict[str, Any] = response.json()
    return found


class AccountService:
    def __init__(self, erp: Downstream) -> None:
        self.erp = erp

    async def account(self, principal: Principal, customer_id: str) -> Account:
        if not principal.may_see_customer(customer_id):
            raise customer_not_found(customer_id)
        customer, credit = await asyncio.gather(
            erp_read(self.erp, f"/erp/v1/customers/{customer_id}"),
            erp_read(self.erp, f"/erp/v1/customers/{customer_id}/credit"),
        )
        if customer is None or credit is None:
            raise customer_not_found(customer_id)
        return msgspec.convert(
            {
                "customer_id": customer["customer_id"],
                "name": customer["name"],
                "status": customer["status"],
                "customer_group": customer.get("customer_group"),
                "payment_terms": customer["payment_terms"],
                "currency": credit["credit_limit"]["currency"],
                "credit_limit": credit["credit_limit"],
                "exposure": credit["exposure"],
                "available": credit["available"],
                "ship_tos": customer.get("ship_tos") or [],
            },
            Account,
        )
