"""The saga's last steps (allocate, settle) for many ``pending`` orders at once
(decision 0057): an order file's new orders, and the orders the resumer finishes after
an outage. One allocation call per 100 orders (availability's batch, each order under
its key ``alloc:{order_id}``, as ``PlaceOrder.advance`` asks), then one transaction
settling them; an order converting a cart hold takes ``advance``."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import msgspec

from process_apis.order_to_ship.flows.partners import Refused
from process_apis.order_to_ship.flows.place_order import PlaceOrder, allocation_body, refusal_of
from process_apis.order_to_ship.orders import repository as repo
from process_apis.order_to_ship.orders.schemas import Order
from shared.correlation import correlation_id
from shared.refusals import Refusal

# The most allocations availability takes in one call.
AVAILABILITY_BATCH = 100

Outcome = tuple[int, Order] | Refusal


async def advance_together(
    place: PlaceOrder,
    pending: Sequence[Order],
    settled: dict[str, Outcome],
    correlations: dict[str, str] | None = None,
) -> None:
    """Allocates and settles ``pending``, filling ``settled`` (by order id) as each
    outcome becomes final: the settled order, or the definite refusal that abandoned
    it. Availability unreachable: the orders left out stay pending (for the resumer)
    and its 503 is raised. ``correlations``: the correlation id of each order's own
    request, for its history and events (orders placed beside others')."""
    held = [order for order in pending if order.hold_id is not None]
    of_request = correlations or {}

    async def alone(order: Order) -> None:
        """The single saga's ``advance``."""
        try:
            with correlated(of_request.get(order.order_id)):
                body = await place.advance(order.order_id, known=order)
        except Refusal as refused:
            if refused.status != 503:
                settled[order.order_id] = refused
            return
        settled[order.order_id] = (201, msgspec.json.decode(body, type=Order))

    conversions = asyncio.gather(*(alone(order) for order in held))
    try:
        plain = [order for order in pending if order.hold_id is None]
        for start in range(0, len(plain), AVAILABILITY_BATCH):
            some = plain[start : start + AVAILABILITY_BATCH]
            try:
                await _allocate_and_settle(place, some, settled, of_request)
            except Refused as refused:
                if refused.status_code >= 500:
                    raise
                # The call refused as a whole (one order availability cannot read):
                # each alone, so that only that one is refused.
                await asyncio.gather(*(alone(order) for order in some))
    finally:
        await conversions


async def _allocate_and_settle(
    place: PlaceOrder,
    pending: Sequence[Order],
    settled: dict[str, Outcome],
    correlations: dict[str, str],
) -> None:
    bodies = {order.order_id: allocation_body(order) for order in pending}
    allocated: dict[str, dict[str, Any]] = {}
    for order_id, allocation in (await place.partners.allocate_many(bodies)).items():
        if isinstance(allocation, Refused):
            await place.abandon(order_id)
            settled[order_id] = refusal_of(allocation)
        else:
            allocated[order_id] = allocation
    if not allocated:
        return
    async with place.db.transaction() as tx:
        # In order id order, as the releaser and the ERP sync lock theirs (no deadlock).
        await repo.lock_many(tx, allocated)
        done = {}
        for order_id in sorted(allocated):
            with correlated(correlations.get(order_id)):
                done[order_id] = await place.settle_in(tx, order_id, allocated[order_id])
    place.releaser.wake()
    for order_id, outcome in done.items():
        if outcome is None:  # settled or abandoned by another run first
            try:
                settled[order_id] = (201, await place.settled(order_id))
            except Refusal as refused:
                settled[order_id] = refused
        else:
            settled[order_id] = (201, outcome[0])


@contextmanager
def correlated(cid: str | None) -> Iterator[None]:
    """The order's own request's correlation id while its changes are made (its
    history rows and events carry it); nothing changes without one."""
    if cid is None:
        yield
        return
    token = correlation_id.set(cid)
    try:
        yield
    finally:
        correlation_id.reset(token)
