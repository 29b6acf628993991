"""Waiting for something another thread, process or event loop does.

- ``eventually`` polls until the check answers something truthy and returns the last
  answer either way: the caller asserts on it (and can say what it saw).
- ``wait_until`` is the same wait for set-up steps: it raises ``TimeoutError`` instead.
- ``eventually_async`` is ``eventually`` inside an event loop; the check may be a
  coroutine function.
- ``wait_until_answers`` waits for a server that starts (a thread or a process) to
  answer 200 on a URL, and gives up at once if it exits (``Exited``).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

TIMEOUT = 15.0
INTERVAL = 0.05
# Checks inside the event loop are in-process and cheap: polled more often, so a test
# moves on (and stops what it started) as soon as its condition holds.
ASYNC_INTERVAL = 0.01


def eventually(
    check: Callable[[], Any], *, timeout: float = TIMEOUT, interval: float = INTERVAL
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def wait_until(
    check: Callable[[], Any],
    *,
    timeout: float = TIMEOUT,
    interval: float = INTERVAL,
    what: str = "",
) -> Any:
    value = eventually(check, timeout=timeout, interval=interval)
    if not value:
        raise TimeoutError(f"timed out after {timeout} s waiting for {what or check}")
    return value


async def eventually_async(
    check: Callable[[], Any | Awaitable[Any]],
    *,
    timeout: float = TIMEOUT,
    interval: float = ASYNC_INTERVAL,
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(interval)


class Exited(RuntimeError):
    """The server exited while the test waited for it to answer."""


def wait_until_answers(
    url: str,
    *,
    alive: Callable[[], bool],
    timeout: float = TIMEOUT,
    interval: float = INTERVAL,
) -> None:
    def answers() -> bool:
        if not alive():
            raise Exited(f"the server of {url} exited while starting")
        try:
            return httpx.get(url, timeout=1.0).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(answers, timeout=timeout, interval=interval, what=f"{url} to answer 200")
