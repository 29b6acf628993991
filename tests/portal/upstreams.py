"""Small but real stand-ins for the order-to-ship, billing and availability process APIs,
honouring the REST shapes of ADR 0002. Only this unit suite uses them; the end-to-end
test runs the real services.

Each is a Litestar app that verifies the bearer token like a real service (kernel
middleware, its own audience, per-route scope, customer binding) and records every
request it receives, so tests can see exactly what the portal forwarded."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import parse_qsl

from litestar import Litestar, Request, get
from litestar.enums import ScopeType
from litestar.params import FromPath, QueryParameter
from litestar.types import ASGIApp, Receive, Scope, Send

from shared.auth.litestar_auth import bearer_auth, requires
from shared.auth.principal import Principal
from shared.auth.verifier import TokenVerifier
from shared.problems import EXCEPTION_HANDLERS, ProblemError, problem_details_plugin
from tests.support.tokens import TestIssuer


@dataclass(frozen=True)
class Seen:
    api: str
    method: str
    path: str
    query: list[tuple[str, str]]
    authorization: str | None
    correlation_id: str | None


@dataclass
class UpstreamState:
    """What the stand-ins serve, and what they have been asked (shared across threads)."""

    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    invoices: list[dict[str, Any]] = field(default_factory=list)
    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    failing: set[str] = field(default_factory=set)  # api names answering 503
    order_delays: dict[str, float] = field(default_factory=dict)  # order_id -> seconds
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def requests_to(self, api: str) -> list[Seen]:
        with self.lock:
            return [s for s in self.seen if s.api == api]

    def reset(self) -> None:
        with self.lock:
            self.seen.clear()
            self.failing.clear()
            self.order_delays.clear()


class _Recorder:
    """Outermost ASGI middleware: records the request before any check refuses it."""

    def __init__(self, app: ASGIApp, api: str, state: UpstreamState) -> None:
        self.app = app
        self.api = api
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP:
            headers = {k.decode(): v.decode() for k, v in scope["headers"]}
            with self.state.lock:
                self.state.seen.append(
                    Seen(
                        api=self.api,
                        method=scope["method"],
                        path=scope["path"],
                        query=parse_qsl(scope["query_string"].decode()),
                        authorization=headers.get("authorization"),
                        correlation_id=headers.get("x-correlation-id"),
                    )
                )
            if self.api in self.state.failing:
                raise ProblemError(503, "unavailable", f"{self.api} is down (test switch).")
        await self.app(scope, receive, send)


def _principal(request: Request[Any, Any, Any]) -> Principal:
    user = request.user
    assert isinstance(user, Principal)
    return user


def _not_found(what: str) -> ProblemError:
    return ProblemError(404, "not-found", f"No such {what}.")


def _service(api: str, handlers: list[Any], issuer: TestIssuer, state: UpstreamState) -> Litestar:
    verifier = TokenVerifier(issuer.key_source(), issuer=issuer.issuer, audience=api)
    return Litestar(
        route_handlers=handlers,
        middleware=[
            lambda app: _Recorder(app, api, state),
            bearer_auth(verifier),
        ],
        plugins=[problem_details_plugin()],
        exception_handlers=EXCEPTION_HANDLERS,
    )


def orders_app(issuer: TestIssuer, state: UpstreamState) -> Litestar:
    @get("/orders/v1/orders/{order_id:str}", **requires("orders:read"))
    async def get_order(order_id: FromPath[str], request: Request[Any, Any, Any]) -> dict[str, Any]:
        await asyncio.sleep(state.order_delays.get(order_id, 0))
        order = state.orders.get(order_id)
        if order is None or not _principal(request).may_see_customer(order["customer_id"]):
            raise _not_found("order")
        return order

    @get("/orders/v1/orders", **requires("orders:read"), sync_to_thread=False)
    def list_orders(
        request: Request[Any, Any, Any],
        customer_id: Annotated[str | None, QueryParameter(name="customer_id")] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
        cursor: Annotated[str | None, QueryParameter(name="cursor")] = None,
        order_id: Annotated[list[str] | None, QueryParameter(name="order_id")] = None,
    ) -> dict[str, Any]:
        principal = _principal(request)
        if order_id:  # the batch read by ids: those the caller may see
            for wanted in order_id:
                delay = state.order_delays.get(wanted, 0)
                if delay:
                    time.sleep(delay)
            found = [
                state.orders[o]
                for o in sorted(set(order_id))
                if o in state.orders and principal.may_see_customer(state.orders[o]["customer_id"])
            ]
            return {"items": found, "next_cursor": None}
        if principal.customer_id is not None:  # the real service's rule (ADR 0014)
            if customer_id not in (None, principal.customer_id):
                return {"items": [], "next_cursor": None}
            customer_id = principal.customer_id
        if cursor is not None and cursor not in state.orders:
            raise ProblemError(400, "bad-request", "The cursor is not valid.")
        matching = [
            order
            for order_id, order in sorted(state.orders.items())
            if (customer_id is None or order["customer_id"] == customer_id)
            and (cursor is None or order_id > cursor)
        ]
        page = matching[:limit]
        more = len(matching) > limit
        return {"items": page, "next_cursor": page[-1]["order_id"] if more else None}

    return _service("orders", [get_order, list_orders], issuer, state)


def billing_app(issuer: TestIssuer, state: UpstreamState) -> Litestar:
    @get("/billing/v1/invoices", **requires("billing:read"), sync_to_thread=False)
    def list_invoices(
        request: Request[Any, Any, Any],
        order_id: Annotated[list[str] | None, QueryParameter(name="order_id")] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
    ) -> dict[str, Any]:
        principal = _principal(request)
        items = [
            invoice
            for invoice in state.invoices
            if (not order_id or invoice["order_id"] in order_id)
            and principal.may_see_customer(invoice["customer_id"])
        ]
        return {"items": items[:limit], "next_cursor": None}

    return _service("billing", [list_invoices], issuer, state)


def availability_app(issuer: TestIssuer, state: UpstreamState) -> Litestar:
    @get("/availability/v1/items/{sku:str}", **requires("inventory:read"), sync_to_thread=False)
    def get_item(sku: FromPath[str]) -> dict[str, Any]:
        return item_of(sku)

    def item_of(sku: str) -> dict[str, Any]:
        found = state.items.get(sku)
        if found is not None:
            return found
        return {
            "sku": sku,
            "available_to_promise": 0,
            "as_of": "2026-01-01T00:00:00Z",
            "locations": [],
        }

    @get("/availability/v2/items", **requires("inventory:read"), sync_to_thread=False)
    def list_items(
        sku: Annotated[list[str], QueryParameter(name="sku")],
    ) -> dict[str, Any]:
        items = []
        for wanted in sku:
            v1 = item_of(wanted)
            items.append(
                {
                    **v1,
                    "locations": [
                        {
                            "location_id": loc["location_id"],
                            "available_to_promise": loc["available_to_promise"],
                            "buckets": {"on_hand": loc["on_hand"], "allocated": loc["allocated"]},
                            "lots": [],
                        }
                        for loc in v1["locations"]
                    ],
                }
            )
        return {"items": items}

    return _service("availability", [get_item, list_items], issuer, state)
