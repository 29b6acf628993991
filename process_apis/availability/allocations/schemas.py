"""The contract of backorder fills and line releases (decision 0030)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from process_apis.availability.schemas import Allocation, Region
from shared.models import Identifier, Quantity, Sku

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
