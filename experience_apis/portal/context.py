"""The per-request GraphQL context: who is calling, the process APIs bound to the
caller's token, and the request's DataLoaders (fresh per request, so nothing is cached
across callers)."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.di import NamedDependency
from strawberry.litestar.controller import BaseContext

from experience_apis.portal.loaders import Loaders
from experience_apis.portal.upstream import Observer, PortalError, ProcessApis
from shared.auth.principal import Principal
from shared.service import Runtime

STAFF_SCOPE = "portal:staff"
# app.state key of an optional callable told of every process-API call (tests count them).
CALL_OBSERVER = "portal_call_observer"


class Caller:
    """An authenticated caller and everything a resolver may use on its behalf."""

    def __init__(self, principal: Principal, apis: ProcessApis) -> None:
        self.principal = principal
        self.apis = apis
        self.loaders = Loaders(apis)
        self.orders = self.loaders.orders
        self.invoices = self.loaders.invoices

    @property
    def is_staff(self) -> bool:
        """Customer service: a token with ``portal:staff`` (or the ``admin`` superscope)
        bound to no customer."""
        return self.principal.customer_id is None and self.principal.has_scope(STAFF_SCOPE)

    def may_read_customer(self, customer_id: str) -> bool:
        """Its own customer for a bound client; any for staff; none for the rest."""
        bound = self.principal.customer_id
        return customer_id == bound if bound is not None else self.is_staff


class PortalContext(BaseContext, kw_only=True):
    caller_: Caller | None = None

    @property
    def caller(self) -> Caller:
        if self.caller_ is None:  # only the GraphiQL page is served without a token
            raise PortalError("An access token is required.", "UNAUTHENTICATED")
        return self.caller_


def caller_for(principal: Principal, runtime: Runtime, app_state: Any) -> Caller:
    """The caller of a request or a subscription connection: the process APIs with its
    token, and the tests' call observer when the app has one."""
    observer: Observer | None = getattr(app_state, CALL_OBSERVER, None)
    apis = ProcessApis(
        orders=runtime.downstream("order_to_ship"),
        billing=runtime.downstream("billing"),
        availability=runtime.downstream("availability"),
        bearer=principal.token,
        observer=observer,
    )
    return Caller(principal, apis)


async def portal_context(
    request: Request[Any, Any, Any], runtime: NamedDependency[Runtime]
) -> PortalContext:
    """Litestar dependency: the bearer middleware has put the verified Principal in
    ``scope["user"]`` (absent only on the unauthenticated GraphiQL GET)."""
    principal = request.scope.get("user")
    if not isinstance(principal, Principal):
        return PortalContext()
    return PortalContext(caller_=caller_for(principal, runtime, request.app.state))
