"""What the WMS's batch endpoints of shipments share (``POST /wms/v1/shipments/batch``,
``POST /wms/v1/deliveries/batch``): each item runs once under its own idempotency key
and is answered as its single call would answer it, a shipment or a refusal."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from shared.db import Tx
from shared.idempotency import IdempotencyStore, item_outcomes
from system_apis.wms.schemas import Shipment, ShipmentBatch, ShipmentBatchResult


async def answer_each(
    idempotency: IdempotencyStore,
    client_id: str,
    keyed: Sequence[tuple[str, dict[str, object]]],
    effect: Callable[[Tx, int], Awaitable[tuple[int, Shipment]]],
) -> ShipmentBatch:
    """``keyed`` is each item's (idempotency key, fingerprinted request); ``effect``
    runs item ``n`` in the batch's transaction."""
    answers = await idempotency.run_each_once(client_id=client_id, items=keyed, effect=effect)
    return ShipmentBatch(
        [
            ShipmentBatchResult(key, shipment=made, refusal=why)
            for (key, _), (made, why) in zip(keyed, item_outcomes(answers, Shipment), strict=True)
        ]
    )
