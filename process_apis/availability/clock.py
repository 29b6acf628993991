"""The service's clock. Hold expiry is decided against it in SQL (a bound ``now``),
so tests and simulations can move time forward without sleeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class Clock:
    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


CLOCK = Clock()


def now() -> datetime:
    return CLOCK.now()
