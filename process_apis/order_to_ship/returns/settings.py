"""Settings of returns (decision 0033), read once from the environment.

- ``TALLY_RMA_WINDOW_DAYS`` (30): how long an RMA may be received against; its
  ``expires_at`` is its authorisation time plus this (fractions of a day allowed).
- ``TALLY_RMA_SWEEP_SECONDS`` (60): how often the sweeper looks for RMAs past their
  expiry (``authorized`` ones expire, ``inspected`` ones close).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True, slots=True)
class ReturnsSettings:
    window: timedelta = timedelta(days=30)
    sweep_every: float = 60.0


def _positive(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, not {raw!r}") from None
    if value <= 0:
        raise ValueError(f"{name} must be positive, not {raw!r}")
    return value


def load_returns_settings() -> ReturnsSettings:
    return ReturnsSettings(
        window=timedelta(days=_positive("TALLY_RMA_WINDOW_DAYS", 30)),
        sweep_every=_positive("TALLY_RMA_SWEEP_SECONDS", 60),
    )
