"""v1's item answer shown as v2: every bucket at every level (decision 0016)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from process_apis.availability import schemas as v1
from process_apis.availability.db import BUCKETS
from process_apis.availability.v2.schemas import (
    BucketsV2,
    ItemAvailabilityV2,
    LocationAvailabilityV2,
    LotAvailability,
)


def buckets(values: Any, lapsed: int) -> BucketsV2:
    return BucketsV2(reserved_lapsed=lapsed, **{b: int(getattr(values, b)) for b in BUCKETS})


def total(parts: Sequence[BucketsV2]) -> BucketsV2:
    names = (*BUCKETS, "reserved_lapsed")
    return BucketsV2(**{n: sum(getattr(p, n) for p in parts) for n in names})


def location(found: v1.LocationAvailability) -> LocationAvailabilityV2:
    lots = [
        LotAvailability(
            lot=lot.lot,
            available_to_promise=lot.available_to_promise,
            buckets=buckets(lot, lot.reserved_lapsed),
            updated_at=lot.updated_at,
        )
        for lot in found.lots
    ]
    return LocationAvailabilityV2(
        location_id=found.location_id,
        available_to_promise=found.available_to_promise,
        buckets=total([lot.buckets for lot in lots]),
        lots=lots,
    )


def item(found: v1.ItemAvailability) -> ItemAvailabilityV2:
    locations = [location(loc) for loc in found.locations]
    return ItemAvailabilityV2(
        sku=found.sku,
        available_to_promise=found.available_to_promise,
        as_of=found.as_of,
        buckets=total([loc.buckets for loc in locations]),
        locations=locations,
    )
