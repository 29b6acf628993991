"""Returns (RMAs) on the order (decision 0033)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, QueryParameter

from process_apis.order_to_ship.returns.schemas import RejectIn, Rma, RmaIn
from process_apis.order_to_ship.returns.service import ReturnService
from process_apis.order_to_ship.returns.states import RmaStatus
from shared.auth.litestar_auth import requires
from shared.auth.principal import Principal
from shared.idempotency import IdempotencyKey
from shared.models import (
    ID_PATTERN,
    CountParam,
    CursorParam,
    IdParam,
    LimitParam,
    OrderIdListQuery,
    Page,
    query_filter,
)
from shared.problems import problem_responses

MAX_RMA_BODY_BYTES = 64 * 1024

RmaStatusFilter = Annotated[
    list[RmaStatus],
    QueryParameter(name="status", max_items=6, description="Only RMAs in one of these statuses."),
]
CustomerFilter = Annotated[
    str | None,
    query_filter(ID_PATTERN, name="customer_id", description="Only this customer's RMAs."),
]


class OrderReturnsController(Controller):
    path = "/orders/v1/orders/{order_id:str}/returns"
    tags = ["returns"]
    request_max_body_size = MAX_RMA_BODY_BYTES

    @post(
        "/",
        operation_id="authorizeReturn",
        summary="Authorise a return (RMA) of shipped units of the order",
        responses=problem_responses(404, 409, 422),
        **requires("orders:write"),
    )
    async def authorize(
        self,
        order_id: IdParam,
        data: JSONBody[RmaIn],
        returns: NamedDependency[ReturnService],
        principal: NamedDependency[Principal],
        idempotency_key: IdempotencyKey,
    ) -> Response[Rma]:
        """201: the RMA (``authorized``), registered at the WMS after commit (even while
        the WMS is down: ``wms_synced`` turns true once it holds it). A line above what
        shipped less what is already returned or authorised: 409
        ``/problems/return-exceeds-shipped`` (with ``sku``, ``shipped``, ``returned``,
        ``requested``); a sku not on the order: 422 ``/problems/not-on-order``;
        another customer's order: 404, as an unknown one. Nothing is written then."""
        result: Response[Any] = await returns.authorize(principal, order_id, data, idempotency_key)
        return result

    @get(
        "/",
        operation_id="listOrderReturns",
        summary="The order's RMAs, oldest first",
        responses=problem_responses(404),
        **requires("orders:read"),
    )
    async def list_returns(
        self,
        order_id: IdParam,
        returns: NamedDependency[ReturnService],
        principal: NamedDependency[Principal],
        cursor: CursorParam = None,
        limit: LimitParam = 50,
    ) -> Page[Rma]:
        return await returns.of_order(principal, order_id, cursor, limit)


class ReturnController(Controller):
    path = "/orders/v1/returns"
    tags = ["returns"]

    @get(
        "/",
        operation_id="listReturns",
        summary="List RMAs by orders (up to 100), status or customer (a bound client: its own)",
        responses=problem_responses(),
        **requires("orders:read"),
    )
    async def list_returns(
        self,
        returns: NamedDependency[ReturnService],
        principal: NamedDependency[Principal],
        order_id: OrderIdListQuery = (),  # type: ignore[assignment]
        status: RmaStatusFilter = (),  # type: ignore[assignment]
        customer_id: CustomerFilter = None,
        count: CountParam = False,
        cursor: CursorParam = None,
        limit: LimitParam = 50,
    ) -> Page[Rma]:
        """Every filter given must hold; ordered by rma_id. RMAs of orders the caller may
        not see are left out (another customer named: an empty page). ``count=true``
        fills ``total_count``."""
        return await returns.list(
            principal,
            order_ids=tuple(order_id),
            statuses=tuple(status),
            customer_id=customer_id,
            cursor=cursor,
            limit=limit,
            count=count,
        )

    @get(
        "/{rma_id:str}",
        operation_id="getReturn",
        summary="Read one RMA: its status and, per line, what was received and dispositioned",
        responses=problem_responses(404),
        **requires("orders:read"),
    )
    async def get_return(
        self,
        rma_id: IdParam,
        returns: NamedDependency[ReturnService],
        principal: NamedDependency[Principal],
    ) -> Rma:
        return await returns.get(principal, rma_id)

    @post(
        "/{rma_id:str}/reject",
        operation_id="rejectReturn",
        summary="Reject an RMA before anything arrived; the WMS is told it is cancelled",
        status_code=200,
        responses=problem_responses(404, 409),
        **requires("orders:admin"),
    )
    async def reject(
        self,
        rma_id: IdParam,
        returns: NamedDependency[ReturnService],
        principal: NamedDependency[Principal],
        data: JSONBody[RejectIn | None] = None,
    ) -> Rma:
        """Only an ``authorized`` RMA: any other state is 409 ``illegal-transition``
        (a rejected one is answered unchanged). Its units no longer count as returned."""
        return await returns.reject(principal, rma_id, (data or RejectIn()).reason)
