"""Availability contract, v2: every bucket at every level (item, location, lot), the
reserved bucket split into active holds and lapsed ones, and a paged list of the
per-lot positions. Decision 0016."""

from __future__ import annotations

from datetime import datetime

import msgspec


class BucketsV2(msgspec.Struct, kw_only=True):
    """The eleven buckets of a position (or their sum), in the item's base unit.

    ``reserved`` counts active holds only; ``reserved_lapsed`` the units of holds whose
    time ran out but that the sweeper has not expired yet (counted by nothing)."""

    on_hand: int
    allocated: int
    reserved: int
    reserved_lapsed: int
    external_committed: int
    quality_control: int
    damaged: int
    hold: int
    safety_stock: int
    incoming: int
    on_order: int
    backordered: int


class LotAvailability(msgspec.Struct, kw_only=True):
    """One source position; ``lot`` is null for stock without a lot."""

    lot: str | None
    available_to_promise: int
    buckets: BucketsV2
    updated_at: datetime


class LocationAvailabilityV2(msgspec.Struct, kw_only=True):
    location_id: str
    available_to_promise: int
    buckets: BucketsV2
    lots: list[LotAvailability]


class ChannelFigures(msgspec.Struct, kw_only=True):
    """Asked with ``channel``: what that channel may promise (decision 0007): the ATP of
    its eligible locations, less what ring-fences keep for others, within its cap."""

    channel: str
    customer_group: str | None
    channel_available: int
    eligible_available: int
    fenced_for_others: int
    cap_remaining: int | None


class ItemAvailabilityV2(msgspec.Struct, kw_only=True, omit_defaults=True):
    """``available_to_promise`` adds each location's ATP, a short location (negative
    ATP) counting as zero; ``buckets`` are the plain sums over every position.
    ``for_channel`` is present only when a channel was asked."""

    sku: str
    available_to_promise: int
    as_of: datetime
    buckets: BucketsV2
    locations: list[LocationAvailabilityV2]
    for_channel: ChannelFigures | None = None


class ItemBatch(msgspec.Struct):
    """The availability of each sku asked, in the order asked (bounded: no paging)."""

    items: list[ItemAvailabilityV2]


class Position(msgspec.Struct, kw_only=True):
    """One (sku, location, lot) position."""

    sku: str
    location_id: str
    lot: str | None
    available_to_promise: int
    buckets: BucketsV2
    updated_at: datetime
