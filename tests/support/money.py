"""Money as the APIs write it."""

from __future__ import annotations

from typing import Any


def usd(amount_minor: int) -> dict[str, Any]:
    """``amount_minor`` US cents as a ``Money`` body."""
    return {"amount_minor": amount_minor, "currency": "USD"}
