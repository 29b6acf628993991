"""The contract of backorder fills and line releases (decision 0030)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from process_apis.availability.schemas import Allocation, AllocationIn, Region
from shared.models import Identifier, ItemKey, ItemRefusal, Quantity, Sku

MAX_BATCH_ALLOCATIONS = 100
Units = Annotated[int, msgspec.Meta(ge=0, le=1_000_000_000)]
ReleaseReason = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=64,
        pattern=r"^[^\u0000]+$",  # the strict decoder refuses U+0000 (400) in any string
        examples=["line_cancelled", "short_pick"],
    ),
]


class FillLineIn(msgspec.Struct, forbid_unknown_fields=True):
    sku: Sku
    quantity: Quantity


class FillIn(msgspec.Struct, forbid_unknown_fields=True):
    """``lines`` absent: every line's whole backorder. ``ship_to`` ranks the warehouses
    for the ``nearest`` strategy, as on a new allocation."""

    lines: Annotated[list[FillLineIn], msgspec.Meta(min_length=1, max_length=200)] | None = None
    ship_to: Region | None = None


class FilledLine(msgspec.Struct):
    sku: str
    location_id: str
    quantity: int


class Fill(msgspec.Struct):
    """The allocation after the fill, and what this fill allocated per location (what
    the caller releases to the warehouses): empty when nothing could be filled."""

    allocation: Allocation
    filled: list[FilledLine]


class FillBatchItemIn(msgspec.Struct, forbid_unknown_fields=True):
    """One fill of a batch: the allocation, the single call's body (``fill``; absent:
    every backorder) and the Idempotency-Key that call would carry."""

    idempotency_key: ItemKey
    allocation_id: Identifier
    fill: FillIn | None = None


class FillBatchIn(msgspec.Struct, forbid_unknown_fields=True):
    """Up to 100 fills, applied in this order (the first served first when stock is
    short); their keys differ (else 422 ``duplicate-idempotency-key``)."""

    fills: Annotated[
        list[FillBatchItemIn], msgspec.Meta(min_length=1, max_length=MAX_BATCH_ALLOCATIONS)
    ]


class FillBatchResult(msgspec.Struct, omit_defaults=True):
    """Per item, in the batch's order: the status and fill its single call answered
    (200; a key seen before replays its answer), or its refusal."""

    idempotency_key: str
    status: int | None = None
    fill: Fill | None = None
    refusal: ItemRefusal | None = None


class FillBatch(msgspec.Struct):
    """The answer of ``POST /availability/v1/allocations/fills/batch``."""

    results: list[FillBatchResult]


class LineReleaseIn(msgspec.Struct, forbid_unknown_fields=True):
    """``release``: allocated, unshipped units to give back (from ``location_id``
    first, if named); ``backorder``: how many of those are still wanted, backordered
    again for a later fill (a short pick under a backordering policy);
    ``cancel_backordered``: backordered units no longer wanted."""

    sku: Sku
    release: Units = 0
    cancel_backordered: Units = 0
    location_id: Identifier | None = None
    backorder: Units = 0


class LineReleasesIn(msgspec.Struct, forbid_unknown_fields=True):
    reason: ReleaseReason
    lines: Annotated[list[LineReleaseIn], msgspec.Meta(min_length=1, max_length=200)]


class AllocationBatchItemIn(msgspec.Struct, forbid_unknown_fields=True):
    """One allocation of a batch (an order file's order): the single call's body, with
    the Idempotency-Key that call would carry."""

    idempotency_key: ItemKey
    allocation: AllocationIn


class AllocationBatchIn(msgspec.Struct, forbid_unknown_fields=True):
    """Up to 100 allocations; their keys differ (else 422 ``duplicate-idempotency-key``)."""

    allocations: Annotated[
        list[AllocationBatchItemIn], msgspec.Meta(min_length=1, max_length=MAX_BATCH_ALLOCATIONS)
    ]


class Shortfall(msgspec.Struct):
    """A line the stock does not cover in full (an insufficient-stock refusal's
    ``errors``): what it asked, what could have been allocated."""

    sku: str
    requested: int
    available: int


class AllocationRefusal(msgspec.Struct, omit_defaults=True):
    """Why one allocation of a batch was refused: the problem its single call would
    answer, with the insufficient-stock refusal's per-line ``errors``."""

    type: str
    status: int
    detail: str
    errors: list[Shortfall] | None = None


class AllocationBatchResult(msgspec.Struct, omit_defaults=True):
    """Per item, in the batch's order: the status and allocation its single call
    answered (201; a key seen before replays its answer), or its refusal."""

    idempotency_key: str
    status: int | None = None
    allocation: Allocation | None = None
    refusal: AllocationRefusal | None = None


class AllocationBatch(msgspec.Struct):
    """The answer of ``POST /availability/v1/allocations/batch``."""

    results: list[AllocationBatchResult]
