"""Reconciliation contract (v1)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

Window = Annotated[int, msgspec.Meta(ge=0, le=86_400)]
Threshold = Annotated[int, msgspec.Meta(ge=0, le=1_000_000_000)]
Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=500, pattern=r"^[^\u0000]+$")]


class RunIn(msgspec.Struct, forbid_unknown_fields=True):
    """Overrides of the service's settings for this run only."""

    settlement_window_seconds: Window | None = None
    threshold: Threshold | None = None


class InFlight(msgspec.Struct):
    """A recent change that may not have reached every system yet."""

    system: Literal["projection", "wms", "erp"]
    at: datetime
    reason: str | None = None
    reference: str | None = None
    on_hand_delta: int | None = None


class Evidence(msgspec.Struct):
    erp_on_hand: int
    wms_on_hand: int
    projection_on_hand: int
    in_flight: list[InFlight]
    recent_movements: list[InFlight]
    detected_at: datetime


class ReconciliationException(msgspec.Struct):
    exception_id: str
    sku: str
    location_id: str
    status: Literal["open", "resolved"]
    erp_on_hand: int
    wms_on_hand: int
    projection_on_hand: int
    largest_difference: int
    evidence: Evidence
    run_id: str
    detected_at: datetime
    last_seen_at: datetime
    resolved_at: datetime | None = None
    resolution: str | None = None
    resolved_by: str | None = None


class Settling(msgspec.Struct):
    """A difference inside the settlement window: not drift yet."""

    sku: str
    location_id: str
    erp_on_hand: int
    wms_on_hand: int
    projection_on_hand: int
    in_flight: list[InFlight]


class RunReport(msgspec.Struct):
    run_id: str
    started_at: datetime
    finished_at: datetime
    settlement_window_seconds: int
    threshold: int
    checked: int
    settling: list[Settling]
    exceptions: list[ReconciliationException]


class ResolveIn(msgspec.Struct, forbid_unknown_fields=True):
    reason: Reason
