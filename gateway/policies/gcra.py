"""The Generic Cell Rate Algorithm over several windows at once (per second AND per
minute), as one pure function. ``redis_limiter.LUA`` is the same steps in Lua.

For a window of ``limit`` calls per ``period``, each call advances a theoretical
arrival time (TAT) by ``period / limit``; a call is allowed while the new TAT stays
within one ``period`` of now. That allows a burst of ``limit`` and then a steady
rate, with one number stored per window. A call counts only if EVERY window allows
it, so a refused call consumes nothing.

Times are integer microseconds, like the Redis script's, so both round alike.
"""

from __future__ import annotations

import math
from typing import NamedTuple


class Window(NamedTuple):
    limit: int
    period_us: int


class Decision(NamedTuple):
    allowed: bool
    limit: int  # the quota of the window closest to exhaustion
    remaining: int
    reset: int  # seconds until that window is full again (refused: until a call fits)
    retry_after: int  # seconds; 0 when allowed


def evaluate(
    now_us: int, tats: list[int | None], windows: tuple[Window, ...]
) -> tuple[Decision, list[int] | None]:
    """The decision and, when allowed, the new TATs to store."""
    allowed = True
    retry_us = 0.0
    new_tats: list[int] = []
    best: tuple[int, int, float] | None = None  # remaining, limit, reset_us
    for window, stored in zip(windows, tats, strict=True):
        interval = window.period_us / window.limit
        tat = max(stored if stored is not None else now_us, now_us)
        new_tat = tat + interval
        wait = new_tat - window.period_us - now_us
        if wait > 0:
            allowed = False
            retry_us = max(retry_us, wait)
            remaining, reset_us = 0, wait
        else:
            remaining = math.floor((window.period_us - (new_tat - now_us)) / interval + 1e-9)
            reset_us = new_tat - now_us
        new_tats.append(round(new_tat))
        if best is None or remaining < best[0] or (remaining == best[0] and reset_us > best[2]):
            best = (remaining, window.limit, reset_us)
    assert best is not None
    decision = Decision(
        allowed,
        best[1],
        best[0],
        math.ceil(best[2] / 1_000_000),
        math.ceil(retry_us / 1_000_000) if not allowed else 0,
    )
    return decision, new_tats if allowed else None
