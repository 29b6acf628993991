"""Availability contract (v1)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from shared.idempotency import fingerprint
from shared.models import Identifier, Quantity, Sku

Channel = Identifier
Region = Identifier
CustomerGroup = Channel
Policy = Literal["reject", "ship_complete", "partial"]
AllocationStatus = Literal[
    "allocated", "partially_allocated", "backordered", "partially_shipped", "shipped", "released"
]


class Buckets(msgspec.Struct, kw_only=True):
    """The buckets of an inventory position, in the item's base unit of measure."""

    on_hand: int
    allocated: int
    reserved: int
    external_committed: int
    quality_control: int
    damaged: int
    hold: int
    safety_stock: int
    incoming: int
    on_order: int
    backordered: int


class LotPosition(Buckets, kw_only=True):
    """One source position (sku, location, lot); ``lot`` is null for stock without one."""

    lot: str | None
    available_to_promise: int
    updated_at: datetime
    reserved_lapsed: int = 0
    """Units of holds whose time ran out but that no write has expired yet: stored in
    the ledger's ``reserved`` until the sweeper writes the expiry, counted by nothing."""


class LocationAvailability(Buckets, kw_only=True):
    location_id: str
    available_to_promise: int
    lots: list[LotPosition]


class ChannelView(msgspec.Struct, kw_only=True):
    """How ``channel_available`` was reached (see decision 0007)."""

    eligible_available: int
    fenced_for_others: int
    cap_remaining: int | None


class ItemAvailability(msgspec.Struct):
    sku: str
    available_to_promise: int
    as_of: datetime
    locations: list[LocationAvailability]
    channel: str | None = None
    customer_group: str | None = None
    channel_available: int | None = None
    channel_view: ChannelView | None = None


class Movement(msgspec.Struct):
    """One ledger row: the non-zero bucket deltas of one position change."""

    movement_id: int
    sku: str
    location_id: str
    lot: str | None
    deltas: dict[str, int]
    reason: str
    source: str
    reference: str
    created_at: datetime


class AllocationLineIn(msgspec.Struct, forbid_unknown_fields=True):
    sku: Sku
    quantity: Quantity


class AllocationIn(msgspec.Struct, forbid_unknown_fields=True):
    """``customer_id``: the customer the order is for. A client bound to a customer
    allocates for that customer only (it may leave the field out; another customer is
    403 ``/problems/customer-not-permitted``); the platform's services name it."""

    order_id: Identifier
    channel: Channel
    lines: Annotated[list[AllocationLineIn], msgspec.Meta(min_length=1, max_length=200)]
    policy: Policy = "reject"
    customer_group: CustomerGroup | None = None
    ship_to: Region | None = None
    customer_id: Identifier | None = None


class AllocationRequest(msgspec.Struct):
    """``AllocationIn`` without the customer: what an Idempotency-Key's fingerprint
    covers (``request_fingerprint``)."""

    order_id: str
    channel: str
    lines: list[AllocationLineIn]
    policy: str
    customer_group: str | None
    ship_to: str | None


def without_customer(data: AllocationIn) -> AllocationRequest:
    """What an allocation request's Idempotency-Key fingerprint covers: all but the
    customer. A bound client's customer is fixed by the client the key belongs to, an
    order has one customer, and keys stored before allocations carried a customer
    (24 h) still replay, the order service's retries of ``alloc:{order_id}`` among
    them."""
    return AllocationRequest(
        data.order_id, data.channel, data.lines, data.policy, data.customer_group, data.ship_to
    )


def request_fingerprint(data: AllocationIn) -> str:
    return fingerprint(without_customer(data))


class LocationClaim(msgspec.Struct):
    location_id: str
    quantity: int
    shipped: int
    released: int


class AllocationLine(msgspec.Struct):
    sku: str
    quantity: int
    allocated: int
    backordered: int
    shipped: int
    released: int
    locations: list[LocationClaim]


class Allocation(msgspec.Struct):
    allocation_id: str
    order_id: str
    channel: str
    policy: Policy
    status: AllocationStatus
    version: int
    lines: list[AllocationLine]
    created_at: datetime
    updated_at: datetime
    customer_group: str | None = None
    customer_id: str | None = None
