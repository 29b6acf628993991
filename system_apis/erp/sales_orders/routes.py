"""Sales orders as the ERP books them: the order service sends each one whole, with a
version; the ERP counts their value not yet invoiced in the customer's credit exposure."""

from __future__ import annotations

from litestar import Controller, get, post, put
from litestar.di import NamedDependency
from litestar.params import JSONBody

from shared.auth.litestar_auth import requires
from shared.auth.principal import Principal
from shared.idempotency import IdempotencyStore
from shared.models import IdParam, ItemRefusal
from shared.problems import problem_responses
from shared.refusals import Refusal
from system_apis.erp.port import ErpPort
from system_apis.erp.schemas import (
    SalesOrder,
    SalesOrderBatch,
    SalesOrderBatchIn,
    SalesOrderBatchResult,
    SalesOrderIn,
)


def _not_found(order_id: str) -> Refusal:
    return Refusal(404, "sales-order-not-found", f"No sales order {order_id}.")


class SalesOrderController(Controller):
    path = "/erp/v1/sales-orders"
    tags = ["sales-orders"]

    @put(
        "/{order_id:str}",
        operation_id="putSalesOrder",
        summary="Book a sales order's state at a version (an older or equal one changes nothing)",
        responses=problem_responses(422),
        **requires("erp:write"),
    )
    async def put_sales_order(
        self,
        order_id: IdParam,
        data: JSONBody[SalesOrderIn],
        erp: NamedDependency[ErpPort],
        idempotency: NamedDependency[IdempotencyStore],
        principal: NamedDependency[Principal],
    ) -> SalesOrder:
        """Answers the stored order: this version when it is newer than the one stored,
        else the stored one unchanged. An unknown customer, or a currency other than its
        credit limit's, is 422."""
        if not principal.may_see_customer(data.customer_id):
            raise Refusal(422, "unknown-customer", f"No customer {data.customer_id}.")
        async with idempotency.db.transaction() as tx:
            return await erp.put_sales_order(tx, order_id, data)

    @post(
        "/batch",
        operation_id="putSalesOrders",
        summary="Book up to 100 sales orders' states in one call, each as its PUT would",
        status_code=200,
        responses=problem_responses(),
        **requires("erp:write"),
    )
    async def put_sales_orders(
        self,
        data: JSONBody[SalesOrderBatchIn],
        erp: NamedDependency[ErpPort],
        idempotency: NamedDependency[IdempotencyStore],
        principal: NamedDependency[Principal],
    ) -> SalesOrderBatch:
        """One transaction for the batch. Each item is answered as ``PUT /{order_id}``
        would: the stored order, or the refusal that PUT would answer (which changes
        nothing of that item, and nothing of the others). Resending is harmless."""
        results: list[SalesOrderBatchResult] = []
        async with idempotency.db.transaction() as tx:
            for item in data.sales_orders:
                try:
                    if not principal.may_see_customer(item.customer_id):
                        raise Refusal(422, "unknown-customer", f"No customer {item.customer_id}.")
                    stored = await erp.put_sales_order(tx, item.order_id, item)
                except Refusal as refused:
                    why = ItemRefusal.of(refused)
                    results.append(SalesOrderBatchResult(item.order_id, refusal=why))
                else:
                    results.append(SalesOrderBatchResult(item.order_id, sales_order=stored))
        return SalesOrderBatch(results)

    @get(
        "/{order_id:str}",
        operation_id="getSalesOrder",
        summary="Read one sales order with its value, invoiced and open value",
        responses=problem_responses(404),
        **requires("erp:read"),
    )
    async def get_sales_order(
        self,
        order_id: IdParam,
        erp: NamedDependency[ErpPort],
        principal: NamedDependency[Principal],
    ) -> SalesOrder:
        order = await erp.get_sales_order(order_id)
        if order is None or not principal.may_see_customer(order.customer_id):
            raise _not_found(order_id)
        return order
