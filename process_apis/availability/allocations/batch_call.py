"""A batch of allocations in one call: the order service's order file (decision 0055)
asks for all of its orders' allocations at once. Each item is allocated as its single
``POST /availability/v1/allocations`` with its own Idempotency-Key would be (the same
customer check, the same batcher, the same keys: either call replays the other's
answer), all of them submitted together so that the batcher's group commit applies
them together, and answered in the batch's order: its status and allocation, or the
problem its single call would answer. One item's refusal changes nothing of the
others; anything else (a database failure) fails the whole call, which the caller
sends again: every item is idempotent under its key."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import msgspec

from process_apis.availability.allocations.batcher import AllocationBatcher
from process_apis.availability.allocations.schemas import (
    AllocationBatch,
    AllocationBatchItemIn,
    AllocationBatchResult,
    AllocationRefusal,
    Shortfall,
)
from process_apis.availability.ownership import for_customer
from process_apis.availability.schemas import Allocation
from shared.auth.principal import Principal
from shared.idempotency import refuse_repeated_keys
from shared.refusals import Refusal


async def allocate_each(
    batcher: AllocationBatcher, principal: Principal, items: Sequence[AllocationBatchItemIn]
) -> AllocationBatch:
    refuse_repeated_keys([item.idempotency_key for item in items])

    async def one(item: AllocationBatchItemIn) -> AllocationBatchResult:
        key = item.idempotency_key
        try:
            data = for_customer(principal, item.allocation)
            answer = await batcher.submit(principal.client_id, key, data)
        except Refusal as refused:
            return AllocationBatchResult(key, refusal=refusal_of(refused))
        body = answer.content  # a replay's is the stored, encoded answer
        allocation = (
            body if isinstance(body, Allocation) else msgspec.json.decode(body, type=Allocation)
        )
        return AllocationBatchResult(key, status=answer.status_code, allocation=allocation)

    # Every item settles before the call answers, even when one failed: a retry then
    # finds the others' keys completed, not in progress.
    settled = await asyncio.gather(*(one(item) for item in items), return_exceptions=True)
    for outcome in settled:
        if isinstance(outcome, BaseException):
            raise outcome
    return AllocationBatch([r for r in settled if isinstance(r, AllocationBatchResult)])


def refusal_of(refused: Refusal) -> AllocationRefusal:
    errors = (refused.extra or {}).get("errors")
    return AllocationRefusal(
        refused.type,
        refused.status,
        refused.detail,
        errors=None if errors is None else msgspec.convert(errors, list[Shortfall]),
    )
