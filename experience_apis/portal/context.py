"""The per-request GraphQL context: who is calling, the process APIs bound to the
caller's token, and the request's DataLoaders (fresh per request, so nothing is cached
across callers)."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.di import NamedDependency
from strawberry.dataloader import DataLoader
from strawberry.litestar.controller import BaseContext

from experience_apis.portal.upstream import InvoiceDoc, OrderDoc, PortalError, ProcessApis
from shared.auth.principal import Principal
from shared.service import Runtime

INVOICE_BATCH_SIZE = 100  # order ids per billing request


class Caller:
    """An authenticated caller and everything a resolver may use on its behalf."""

    def __init__(self, principal: Principal, apis: ProcessApis) -> None:
        self.principal = principal
        self.apis = apis
        self.orders: DataLoader[str, OrderDoc | None] = DataLoader(load_fn=apis.orders_by_id)
        self.invoices: DataLoader[str, list[InvoiceDoc]] = DataLoader(
            load_fn=apis.invoices_by_order, max_batch_size=INVOICE_BATCH_SIZE
        )


class PortalContext(BaseContext, kw_only=True):
    caller_: Caller | None = None

    @property
    def caller(self) -> Caller:
        if self.caller_ is None:  # only the GraphiQL page is served without a token
            raise PortalError("An access token is required.", "UNAUTHENTICATED")
        return self.caller_


async def portal_context(
    request: Request[Any, Any, Any], runtime: NamedDependency[Runtime]
) -> PortalContext:
    """Litestar dependency: the bearer middleware has put the verified Principal in
    ``scope["user"]`` (absent only on the unauthenticated GraphiQL GET)."""
    principal = request.scope.get("user")
    if not isinstance(principal, Principal):
        return PortalContext()
    apis = ProcessApis(
        orders=runtime.downstream("order_to_ship"),
        billing=runtime.downstream("billing"),
        availability=runtime.downstream("availability"),
        bearer=principal.token,
    )
    return PortalContext(caller_=Caller(principal, apis))
