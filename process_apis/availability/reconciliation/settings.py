"""Settings of reconciliation, read once from the environment.

- ``TALLY_RECONCILE_WINDOW_SECONDS`` (300): the in-flight settlement window. A
  position that any of the three systems changed more recently is "settling": its
  differences are not yet drift.
- ``TALLY_RECONCILE_THRESHOLD`` (0): a difference (in base units) above it raises an
  exception.
- ``TALLY_RECONCILE_INTERVAL_SECONDS`` (900): how often the service runs it; 0 turns
  the scheduled run off.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ReconcileSettings:
    window_seconds: int = 300
    threshold: int = 0
    interval_seconds: float = 900.0


def _read(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, not {raw!r}") from None
    if value < 0:
        raise ValueError(f"{name} must not be negative, not {raw!r}")
    return value


def load_reconcile_settings() -> ReconcileSettings:
    return ReconcileSettings(
        window_seconds=int(_read("TALLY_RECONCILE_WINDOW_SECONDS", 300)),
        threshold=int(_read("TALLY_RECONCILE_THRESHOLD", 0)),
        interval_seconds=_read("TALLY_RECONCILE_INTERVAL_SECONDS", 900),
    )
