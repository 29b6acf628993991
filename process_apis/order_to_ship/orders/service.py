"""What the routes call: placing, reading, listing and cancelling orders, with the
object-level rule that a client bound to a customer sees that customer's orders only."""

from __future__ import annotations

from typing import Any

from litestar import Response

from process_apis.order_to_ship.flows.cancel_order import CancelOrder
from process_apis.order_to_ship.flows.place_order import PlaceOrder
from process_apis.order_to_ship.orders import repository as repo
from process_apis.order_to_ship.orders.schemas import Order, OrderIn
from shared.auth.principal import Principal
from shared.db import Database
from shared.models import Page
from shared.paging import decode_cursor, keyset_page
from shared.refusals import Refusal


class OrderService:
    def __init__(self, db: Database, place: PlaceOrder, cancel: CancelOrder) -> None:
        self.db = db
        self.place_flow = place
        self.cancel_flow = cancel

    async def place(self, principal: Principal, key: str, data: OrderIn) -> Response[Any]:
        return await self.place_flow.run(principal, key, data)

    async def get(self, principal: Principal, order_id: str) -> Order:
        async with self.db.read() as conn:
            order = await repo.get(conn, order_id)
        if order is None or not principal.may_see_customer(order.customer_id):
            raise Refusal(404, "order-not-found", f"No order {order_id}.")
        return order

    async def list(
        self, principal: Principal, customer_id: str | None, cursor: str | None, limit: int
    ) -> Page[Order]:
        if principal.customer_id is not None:
            if customer_id not in (None, principal.customer_id):
                return Page([], None)
            customer_id = principal.customer_id
        async with self.db.read() as conn:
            found = await repo.page(conn, customer_id, decode_cursor(cursor), limit + 1)
        return keyset_page(found, limit, key=lambda o: o.order_id)

    async def cancel(self, principal: Principal, order_id: str) -> Order:
        return await self.cancel_flow.run(await self.get(principal, order_id))
