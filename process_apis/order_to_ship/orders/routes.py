from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from process_apis.order_to_ship.orders.schemas import Order, OrderIn
from process_apis.order_to_ship.orders.service import OrderService
from shared.auth.litestar_auth import requires
from shared.auth.principal import Principal
from shared.idempotency import IdempotencyKey
from shared.models import ID_PATTERN, CursorParam, IdParam, LimitParam, Page, query_filter
from shared.problems import problem_responses

MAX_ORDER_BODY_BYTES = 64 * 1024

CustomerFilter = Annotated[
    str | None,
    query_filter(ID_PATTERN, name="customer_id", description="Only this customer's orders."),
]


class OrderController(Controller):
    path = "/orders/v1/orders"
    tags = ["orders"]
    # 100 lines are a few KiB; anything near this is not an order (413 problem+json).
    request_max_body_size = MAX_ORDER_BODY_BYTES

    @post(
        "/",
        operation_id="placeOrder",
        summary="Place an order: credit and price checks, allocation, release to warehouses",
        responses=problem_responses(409, 413, 422, 502, 503),
        **requires("orders:write"),
    )
    async def place_order(
        self,
        data: JSONBody[OrderIn],
        orders: NamedDependency[OrderService],
        principal: NamedDependency[Principal],
        idempotency_key: IdempotencyKey,
    ) -> Response[Order]:
        """Unknown customer or sku, and an exceeded credit limit, answer 422; insufficient
        stock (policy ``reject``) answers 409; a client bound to one customer placing for
        another answers 403 ``/problems/customer-not-permitted``. None of them leaves
        anything written."""
        result: Response[Any] = await orders.place(principal, idempotency_key, data)
        return result

    @get(
        "/",
        operation_id="listOrders",
        summary="List orders, optionally of one customer (a bound client: its own only)",
        responses=problem_responses(),
        **requires("orders:read"),
    )
    async def list_orders(
        self,
        orders: NamedDependency[OrderService],
        principal: NamedDependency[Principal],
        customer_id: CustomerFilter = None,
        cursor: CursorParam = None,
        limit: LimitParam = 50,
    ) -> Page[Order]:
        return await orders.list(principal, customer_id, cursor, limit)

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
        """Cancelling a cancelled order answers it unchanged; 409 once anything shipped."""
        return await orders.cancel(principal, order_id)
