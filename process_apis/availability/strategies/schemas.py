"""Warehouse strategy contract: how a channel's lines pick locations."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from process_apis.availability.allocations.planner import Ranking
from process_apis.availability.schemas import Region

# Item and key rules of these collections are checked by the routes (422): the
# OpenAPI generator drops constraints nested inside a list or a map.
LocationIds = Annotated[list[str], msgspec.Meta(max_length=200)]
Splitting = Literal["across_locations", "one_location"]
MAX_DISTANCE = 100_000


class ChannelStrategyIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """``most_stock`` (default): the location with the most ATP first. ``priority``:
    the order of ``priority`` (unlisted locations after, most stock first).
    ``nearest``: the shortest distance from the allocation's ``ship_to`` region (see
    ``PUT /regions/{region}``), most stock breaking ties; without a ship_to it is
    most_stock. ``split_lines: one_location`` takes each line from one location.
    ``eligible_locations`` (null: all) limits where the channel may take stock."""

    ranking: Ranking = "most_stock"
    split_lines: Splitting = "across_locations"
    priority: LocationIds = msgspec.field(default_factory=list)
    eligible_locations: LocationIds | None = None


class ChannelStrategy(msgspec.Struct, kw_only=True):
    channel: str
    ranking: Ranking
    split_lines: Splitting
    priority: list[str]
    eligible_locations: list[str] | None
    configured: bool
    updated_at: datetime | None


class LocationIn(msgspec.Struct, forbid_unknown_fields=True):
    region: Region


class Location(msgspec.Struct):
    location_id: str
    region: str
    updated_at: datetime


class RegionIn(msgspec.Struct, forbid_unknown_fields=True):
    """Distances (0..100000, any unit, e.g. km) from this region to others, keyed by
    region id; symmetric unless the other region states its own. Replaces what the
    region had."""

    distances: Annotated[dict[str, int], msgspec.Meta(max_length=500)]


class RegionOut(msgspec.Struct):
    region: str
    distances: dict[str, int]
