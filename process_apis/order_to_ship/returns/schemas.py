"""Returns contract (v1, decision 0033): an RMA authorises shipped units of an order to
come back; its lines show what the WMS received and how each unit was dispositioned."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from process_apis.order_to_ship.returns.states import RmaStatus
from shared.models import Quantity, Sku, Text


class RmaLineIn(msgspec.Struct, forbid_unknown_fields=True):
    sku: Sku
    quantity: Quantity


class RmaIn(msgspec.Struct, forbid_unknown_fields=True):
    lines: Annotated[list[RmaLineIn], msgspec.Meta(min_length=1, max_length=100)]
    reason: Text | None = None


class RejectIn(msgspec.Struct, forbid_unknown_fields=True):
    reason: Text = "operator decision"


class RmaLine(msgspec.Struct):
    sku: str
    authorized: int
    received: int = 0
    restocked: int = 0
    damaged: int = 0
    scrapped: int = 0
    returned_to_vendor: int = 0


class Rma(msgspec.Struct):
    rma_id: str
    order_id: str
    customer_id: str
    status: RmaStatus
    reason: str | None
    lines: list[RmaLine]
    expires_at: datetime
    created_at: datetime
    updated_at: datetime
    rejection_reason: str | None = None
    # The WMS holds the RMA's current state (false while it is queued: the WMS may be down).
    wms_synced: bool = False
