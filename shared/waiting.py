"""Waiting for work: a sleep that a signal cuts short."""

from __future__ import annotations

import asyncio
from contextlib import suppress


async def sleep_or_wake(wake: asyncio.Event, seconds: float) -> None:
    """Sleeps ``seconds``, or until ``wake`` is set; clears ``wake`` either way."""
    with suppress(TimeoutError):
        await asyncio.wait_for(wake.wait(), timeout=seconds)
    wake.clear()
