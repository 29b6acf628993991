from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.exceptions import ValidationException
from litestar.params import JSONBody, QueryParameter

from process_apis.order_to_ship.lifecycle.states import OrderStatus
from process_apis.order_to_ship.orders.reads import OrderFilter
from process_apis.order_to_ship.orders.schemas import (
    DecisionIn,
    HoldReleases,
    HoldReleasesIn,
    LineCancellationIn,
    Order,
    OrderBatch,
    OrderBatchIn,
    OrderIn,
    StatusChange,
)
from process_apis.order_to_ship.orders.service import OrderService
from shared.auth.litestar_auth import requires
from shared.auth.principal import Principal
from shared.idempotency import IdempotencyKey
from shared.models import (
    ID_PATTERN,
    SKU_PATTERN,
    CountParam,
    CursorParam,
    IdParam,
    LimitParam,
    OrderIdListQuery,
    Page,
    SkuParam,
    query_filter,
)
from shared.problems import problem_responses

MAX_ORDER_BODY_BYTES = 64 * 1024
MAX_BATCH_BODY_BYTES = 1024 * 1024  # 100 orders of a few KiB each

CustomerFilter = Annotated[
    str | None,
    query_filter(ID_PATTERN, name="customer_id", description="Only this customer's orders."),
]
StatusFilter = Annotated[
    list[OrderStatus],
    QueryParameter(
        name="status", max_items=12, description="Only orders in one of these statuses."
    ),
]
# RFC 3339 date-time with its offset: taken as text and parsed here, so that nothing
# else (a number, a date alone, a naive time) is read as a point in time.
RFC3339_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
PlacedFrom = Annotated[
    str | None,
    QueryParameter(
        name="placed_from",
        pattern=RFC3339_PATTERN,
        max_length=40,
        format="date-time",
        description="Only orders placed at or after it (RFC 3339, with its offset).",
    ),
]
PlacedTo = Annotated[
    str | None,
    QueryParameter(
        name="placed_to",
        pattern=RFC3339_PATTERN,
        max_length=40,
        format="date-time",
        description="Only orders placed before it (RFC 3339, with its offset).",
    ),
]


def point_in_time(name: str, value: str | None) -> datetime | None:
    """The parameter's time (the pattern has checked its shape); an impossible date or
    time (month 13, hour 25) is the 400 of any schema-violating parameter."""
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        raise ValidationException(
            detail="Validation failed for GET /orders/v1/orders",
            extra=[{"key": name, "message": f"{value!r} is not an RFC 3339 date-time"}],
        ) from None


SkuFilter = Annotated[
    str | None,
    query_filter(SKU_PATTERN, name="sku", description="Only orders with a line of this sku."),
]
ChannelFilter = Annotated[
    str | None,
    QueryParameter(
        name="channel",
        min_length=1,
        max_length=32,
        pattern=SKU_PATTERN,
        description="Only orders of this sales channel.",
    ),
]


class OrderController(Controller):
    path = "/orders/v1/orders"
    tags = ["orders"]
    # 100 lines are a few KiB; anything near this is not an order (413 problem+json).
    request_max_body_size = MAX_ORDER_BODY_BYTES

    @post(
        "/",
        operation_id="placeOrder",
        summary="Place an order: credit and price checks, allocation, queued for the warehouses",
        responses=problem_responses(409, 413, 422, 502, 503),
        response_description=(
            "201: placed and allocated (status accepted, released, partially_allocated, "
            "backordered or on_hold). 202: placed and named, allocation pending "
            "(availability could not answer); the same key answers it."
        ),
        **requires("orders:write"),
    )
    async def place_order(
        self,
        data: JSONBody[OrderIn],
        orders: NamedDependency[OrderService],
        principal: NamedDependency[Principal],
        idempotency_key: IdempotencyKey,
    ) -> Response[Order]:
        """Unknown or blocked customer, unknown sku or ship-to answer 422; insufficient
        stock (policy ``reject``) answers 409; a client bound to one customer placing for
        another answers 403 ``/problems/customer-not-permitted``; the ERP unreachable
        answers 503 with Retry-After. None of them leaves anything written. Over the
        credit limit the order is placed ``on_hold`` (allocated, not released)."""
        result: Response[Any] = await orders.place(principal, idempotency_key, data)
        return result

    @post(
        "/batch",
        operation_id="placeOrders",
        summary="Place up to 100 orders in one call, each as its single placement would",
        status_code=200,
        request_max_body_size=MAX_BATCH_BODY_BYTES,
        responses=problem_responses(413, 422),
        **requires("orders:write"),
    )
    async def place_orders(
        self,
        data: JSONBody[OrderBatchIn],
        orders: NamedDependency[OrderService],
        principal: NamedDependency[Principal],
    ) -> OrderBatch:
        """An EDI partner's purchase-order file or a marketplace's feed in one call.
        Each order is placed as ``POST /orders/v1/orders`` with ``Idempotency-Key:
        <idempotency_key>`` would place it (a key seen before, by either endpoint,
        replays its answer) and answered in the batch's order: ``status`` 201 or 202
        with the ``order``, or its ``refusal`` (403 another customer's, 409
        insufficient stock, 422 unknown customer or sku, 503 a system behind it
        unavailable: that order may be sent again under its key). One order's refusal
        changes nothing of the others. Keys repeated within the batch are 422
        ``duplicate-idempotency-key`` before anything is placed."""
        return await orders.place_batch(principal, data.orders)

    @post(
        "/hold-releases",
        operation_id="releaseOrderHolds",
        summary="Release up to 100 orders held for credit, each as its release-hold would",
        status_code=200,
        responses=problem_responses(422),
        **requires("orders:admin"),
    )
    async def release_holds(
        self, data: JSONBody[HoldReleasesIn], orders: NamedDependency[OrderService]
    ) -> HoldReleases:
        """A credit desk's reviewed list in one call. Each order is released as
        ``POST /{order_id}/release-hold`` with the same reason would release it, and
        answered in the request's order: the ``order``, or its ``refusal`` (404 no such
        order, 409 not held or being cancelled, 502 its allocation unreadable). One
        order's refusal changes nothing of the others; sent again, the released ones
        are 409 ``illegal-transition``. An order named twice is 422
        ``duplicate-order-id`` before anything is released."""
        return await orders.release_holds(data.order_ids, data.reason)

    @get(
        "/",
        operation_id="listOrders",
        summary="List orders by customer, ids, status, placement time, sku or channel",
        responses=problem_responses(),
        **requires("orders:read"),
    )
    async def list_orders(
        self,
        orders: NamedDependency[OrderService],
        principal: NamedDependency[Principal],
        customer_id: CustomerFilter = None,
        order_id: OrderIdListQuery = (),  # type: ignore[assignment]
        status: StatusFilter = (),  # type: ignore[assignment]
        placed_from: PlacedFrom = None,
        placed_to: PlacedTo = None,
        sku: SkuFilter = None,
        channel: ChannelFilter = None,
        count: CountParam = False,
        cursor: CursorParam = None,
        limit: LimitParam = 50,
    ) -> Page[Order]:
        """Every filter given must hold. ``order_id`` (repeatable, up to 100) is a batch
        read by ids: the answer holds those the caller may see, an unknown id or another
        customer's is left out. ``placed_from``/``placed_to``: created_at in [from, to).
        A bound client sees its own customer's orders only (another customer named: an
        empty page). ``count=true`` fills ``total_count``. Ordered by order_id."""
        where = OrderFilter(
            customer_id=customer_id,
            order_ids=tuple(order_id),
            statuses=tuple(status),
            placed_from=point_in_time("placed_from", placed_from),
            placed_to=point_in_time("placed_to", placed_to),
            sku=sku,
            channel=channel,
        )
        return await orders.list(principal, where, cursor, limit, count=count)

    @get(
        "/{order_id:str}",
        operation_id="getOrder",
        summary="Read one order with its lines and shipments (another customer's: 404)",
        responses=problem_responses(404),
        **requires("orders:read"),
    )
    async def get_order(
        self,
        order_id: IdParam,
        orders: NamedDependency[OrderService],
        principal: NamedDependency[Principal],
    ) -> Order:
        return await orders.get(principal, order_id)

    @post(
        "/{order_id:str}/cancel",
        operation_id="cancelOrder",
        summary="Cancel an order that has not shipped, releasing its stock",
        status_code=200,
        responses=problem_responses(404, 409, 502, 503),
        **requires("orders:write"),
    )
    async def cancel_order(
        self,
        order_id: IdParam,
        orders: NamedDependency[OrderService],
        principal: NamedDependency[Principal],
    ) -> Order:
        """Cancelling a cancelled order answers it unchanged; 409 ``order-shipped`` once
        anything shipped (cancel the open units instead). Picked units are put back to
        stock in the warehouse."""
        return await orders.cancel(principal, order_id)

    @post(
        "/{order_id:str}/line-cancellations",
        operation_id="cancelOrderLines",
        summary="Cancel some units of some lines: backordered, allocated, or at the warehouse",
        status_code=200,
        responses=problem_responses(404, 409, 422, 502, 503),
        **requires("orders:write"),
    )
    async def cancel_lines(
        self,
        order_id: IdParam,
        data: JSONBody[LineCancellationIn],
        orders: NamedDependency[OrderService],
        principal: NamedDependency[Principal],
        idempotency_key: IdempotencyKey,
    ) -> Order:
        """Backordered units go first, then allocated ones not yet at a warehouse, then
        unpicked and picked ones (put back). Units that shipped: 409 ``units-shipped``.
        The same key repeats the same cancellation (and finishes an interrupted one)."""
        return await orders.cancel_lines(principal, order_id, data, idempotency_key)

    @post(
        "/{order_id:str}/lines/{sku:str}/short-close",
        operation_id="shortCloseLine",
        summary="Short-close a line: its backordered units are cancelled, the rest stands",
        status_code=200,
        responses=problem_responses(404, 409, 502, 503),
        **requires("orders:write"),
    )
    async def short_close(
        self,
        order_id: IdParam,
        sku: SkuParam,
        orders: NamedDependency[OrderService],
        principal: NamedDependency[Principal],
    ) -> Order:
        return await orders.short_close(principal, order_id, sku)

    @post(
        "/{order_id:str}/backorders/cancel",
        operation_id="cancelBackorders",
        summary="Cancel the whole backorder: every line's backordered units",
        status_code=200,
        responses=problem_responses(404, 409, 502, 503),
        **requires("orders:write"),
    )
    async def cancel_backorders(
        self,
        order_id: IdParam,
        orders: NamedDependency[OrderService],
        principal: NamedDependency[Principal],
    ) -> Order:
        return await orders.short_close(principal, order_id, None)

    @post(
        "/{order_id:str}/release-hold",
        operation_id="releaseOrderHold",
        summary="Release an order held for credit: its allocated units go to the warehouses",
        status_code=200,
        responses=problem_responses(404, 409, 502, 503),
        **requires("orders:admin"),
    )
    async def release_hold(
        self,
        order_id: IdParam,
        orders: NamedDependency[OrderService],
        principal: NamedDependency[Principal],
        data: JSONBody[DecisionIn | None] = None,
    ) -> Order:
        """Only an order ``on_hold``: any other state is 409 ``illegal-transition``."""
        return await orders.release_hold(principal, order_id, (data or DecisionIn()).reason)

    @post(
        "/{order_id:str}/reject",
        operation_id="rejectOrder",
        summary="Reject an order held for credit: its stock is given back",
        status_code=200,
        responses=problem_responses(404, 409, 502, 503),
        **requires("orders:admin"),
    )
    async def reject(
        self,
        order_id: IdParam,
        orders: NamedDependency[OrderService],
        principal: NamedDependency[Principal],
        data: JSONBody[DecisionIn | None] = None,
    ) -> Order:
        """Only an order ``on_hold``: any other state is 409 ``illegal-transition``."""
        return await orders.reject(principal, order_id, (data or DecisionIn()).reason)

    @get(
        "/{order_id:str}/history",
        operation_id="getOrderHistory",
        summary="The order's status history: from, to, at, cause, correlation id",
        responses=problem_responses(404),
        **requires("orders:read"),
    )
    async def history(
        self,
        order_id: IdParam,
        orders: NamedDependency[OrderService],
        principal: NamedDependency[Principal],
        cursor: CursorParam = None,
        limit: LimitParam = 100,
    ) -> Page[StatusChange]:
        return await orders.history(principal, order_id, cursor, limit)
