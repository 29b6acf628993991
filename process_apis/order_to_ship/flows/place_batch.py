"""A batch of orders in one call (decision 0055): an EDI partner's purchase-order file,
a marketplace's order feed. Each order is placed as its single ``POST
/orders/v1/orders`` with its own Idempotency-Key would be placed (the same saga, the
same keys: either call replays the other's answer), several at a time, and answered
in the batch's order: its status and order, or the problem its single call would
answer. One order's refusal changes nothing of the others."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import msgspec

from process_apis.order_to_ship.flows.place_order import PlaceOrder
from process_apis.order_to_ship.orders.schemas import (
    Order,
    OrderBatch,
    OrderBatchItemIn,
    OrderBatchResult,
)
from shared.auth.principal import Principal
from shared.idempotency import refuse_repeated_keys
from shared.models import ItemRefusal
from shared.refusals import Refusal

# Orders of one batch in flight at once: enough for availability's batcher to take
# their allocations together, few enough that one file does not crowd out the others.
AT_ONCE = 8


async def place_each(
    place: PlaceOrder, principal: Principal, items: Sequence[OrderBatchItemIn]
) -> OrderBatch:
    refuse_repeated_keys([item.idempotency_key for item in items])
    gate = asyncio.Semaphore(AT_ONCE)

    async def one(item: OrderBatchItemIn) -> OrderBatchResult:
        async with gate:
            try:
                answer = await place.run(principal, item.idempotency_key, item.order)
            except Refusal as refused:
                return OrderBatchResult(item.idempotency_key, refusal=ItemRefusal.of(refused))
        body = answer.content
        order = body if isinstance(body, Order) else msgspec.json.decode(body, type=Order)
        return OrderBatchResult(item.idempotency_key, status=answer.status_code, order=order)

    return OrderBatch(list(await asyncio.gather(*(one(item) for item in items))))
