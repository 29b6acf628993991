"""Holds contract: temporary claims (carts, quotes) that expire on their own."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from process_apis.availability.schemas import Channel, CustomerGroup, Region
from shared.models import Identifier, Quantity, Sku

MAX_TTL_SECONDS = 30 * 24 * 3600
TtlSeconds = Annotated[int, msgspec.Meta(ge=1, le=MAX_TTL_SECONDS)]
AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]
HoldStatus = Literal["active", "released", "expired", "converted"]


class HoldLineIn(msgspec.Struct, forbid_unknown_fields=True):
    sku: Sku
    quantity: Quantity


class HoldIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """All lines are held or none (409 ``/problems/insufficient-stock``). Give exactly
    one of ``expires_at`` (in the future, at most 30 days ahead) and ``ttl_seconds``."""

    channel: Channel
    lines: Annotated[list[HoldLineIn], msgspec.Meta(min_length=1, max_length=200)]
    hold_id: Identifier | None = None
    customer_id: Identifier | None = None
    customer_group: CustomerGroup | None = None
    ship_to: Region | None = None
    expires_at: AwareDatetime | None = None
    ttl_seconds: TtlSeconds | None = None


class HeldPosition(msgspec.Struct):
    location_id: str
    lot: str | None
    quantity: int


class HoldLine(msgspec.Struct):
    sku: str
    quantity: int
    locations: list[HeldPosition]


class Hold(msgspec.Struct, kw_only=True):
    """``status`` is ``expired`` from ``expires_at`` on, whether or not the sweeper
    has written the expiry to the ledger yet; an expired hold counts for nothing."""

    hold_id: str
    channel: str
    customer_id: str | None
    customer_group: str | None
    status: HoldStatus
    expires_at: datetime
    order_id: str | None
    version: int
    lines: list[HoldLine]
    created_at: datetime
    updated_at: datetime


class HoldConvertIn(msgspec.Struct, forbid_unknown_fields=True):
    """Turns the held units, as they are, into the order's allocation (allocation_id =
    order_id, policy ``reject``)."""

    order_id: Identifier
