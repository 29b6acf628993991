"""The hub of each app (one per process), and the lifespan that runs its reader."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any
from weakref import WeakKeyDictionary

from experience_apis.portal.subscriptions.hub import Hub
from experience_apis.portal.subscriptions.owners import Owners
from shared.events.bus import open_bus
from shared.service import Runtime

_hubs: WeakKeyDictionary[Runtime, Hub] = WeakKeyDictionary()


def hub_of(runtime: Runtime) -> Hub | None:
    """The running hub (None before the app started or after it stopped)."""
    return _hubs.get(runtime)


def subscriptions_lifespan(
    runtime: Runtime,
) -> Callable[[Any], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        bus = open_bus(runtime.settings.bus_url)
        hub = Hub(bus, Owners(runtime.downstream("order_to_ship")))
        stop = asyncio.Event()
        try:
            await hub.start_at_head()
            task = asyncio.create_task(hub.run(stop), name="portal-subscriptions")
            _hubs[runtime] = hub
            try:
                yield
            finally:
                _hubs.pop(runtime, None)
                stop.set()
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        finally:
            await bus.close()

    return lifespan
