"""The status history of many orders in one read (the portal's batch of
``GET /orders/v1/orders/{order_id}/history``)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency
from sqlalchemy import select

from process_apis.order_to_ship.db import order_status_history
from process_apis.order_to_ship.orders import reads
from process_apis.order_to_ship.orders.schemas import StatusChange
from shared.auth.litestar_auth import requires
from shared.auth.principal import Principal
from shared.db import Database
from shared.models import ID_PATTERN, Identifier, query_filter
from shared.problems import problem_responses

OrderIdsQuery = Annotated[
    list[Identifier],
    query_filter(
        ID_PATTERN,
        name="order_id",
        many=True,
        required=True,
        min_items=1,
        description="The orders (up to 100).",
    ),
]


class OrderHistory(msgspec.Struct):
    order_id: str
    entries: list[StatusChange]  # oldest first, as GET /orders/v1/orders/{id}/history


class OrderHistories(msgspec.Struct):
    items: list[OrderHistory]


class HistoryReader:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def histories(self, principal: Principal, order_ids: list[str]) -> OrderHistories:
        """Every status move of each order the caller may see, by order_id; an unknown
        id or another customer's order is left out (the answer of an unknown id)."""
        return await _histories(self.db, principal, order_ids)


async def _histories(db: Database, principal: Principal, order_ids: list[str]) -> OrderHistories:
    h = order_status_history.c
    async with db.read() as conn:
        ids = await reads.visible_ids(conn, order_ids, principal.customer_id)
        found: dict[str, list[StatusChange]] = {i: [] for i in ids}
        if ids:
            rows = await conn.execute(
                select(order_status_history).where(h.order_id.in_(ids)).order_by(h.order_id, h.seq)
            )
            for row in rows:
                found[row.order_id].append(
                    StatusChange(
                        row.from_status, row.to_status, row.at, row.cause, row.correlation_id
                    )
                )
    return OrderHistories([OrderHistory(i, entries) for i, entries in found.items()])


class OrderHistoryBatchController(Controller):
    path = "/orders/v1/history"
    tags = ["orders"]

    @get(
        "/",
        operation_id="getOrderHistories",
        summary="The status history of up to 100 orders in one read",
        responses=problem_responses(),
        **requires("orders:read"),
    )
    async def histories(
        self,
        order_id: OrderIdsQuery,
        order_histories: NamedDependency[HistoryReader],
        principal: NamedDependency[Principal],
    ) -> OrderHistories:
        """Items by order_id, each with every row of its history (from, to, at, cause,
        correlation id). Orders the caller may not see (another customer's, unknown)
        are left out, so a bound client gets its own only."""
        return await order_histories.histories(principal, list(order_id))
