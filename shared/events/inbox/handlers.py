"""What a consumer calls for an event: the handler protocol, the adapter for a plain
function, and the exception for an event that cannot apply yet."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from shared.db import Tx, is_conflict, is_lost_connection
from shared.events.envelope import Event
from shared.problems import ProblemError


class NotYet(Exception):
    """Raised by a handler when the event cannot apply *yet* (a dependency is behind or
    unreachable): redelivered with backoff, dead-lettered only after ``max_parks``."""


def is_not_yet(exc: BaseException) -> bool:
    """NotYet, a downstream service that is unreachable right now (503), a
    transaction the database rolled back for another (a deadlock victim), or a
    database connection that had gone: none of them is the event's fault, so none
    counts towards the dead letters."""
    return (
        isinstance(exc, NotYet)
        or (isinstance(exc, ProblemError) and exc.status_code == 503)
        or is_conflict(exc)
        or is_lost_connection(exc)
    )


class EventHandler(Protocol):
    """A handler may set ``prepares = False`` when ``prepare`` does nothing (returns
    None): its events are then applied in runs, several per transaction."""

    async def prepare(self, event: Event) -> Any:
        """Runs outside the transaction: idempotent calls to other services only."""

    async def apply(self, tx: Tx, event: Event, prepared: Any) -> None:
        """Runs inside the transaction that records the event in the inbox."""


class ApplyOnly:
    """Adapts a plain ``async def fn(tx, event)`` into an EventHandler."""

    # No prepare step: the consumer may apply several of these events in one
    # transaction (see EventConsumer.process).
    prepares = False

    def __init__(self, fn: Callable[[Tx, Event], Awaitable[None]]) -> None:
        self.fn = fn

    # EventHandler's signatures: nothing to prepare, so nothing prepared to apply.
    async def prepare(self, event: Event) -> None:  # noqa: ARG002
        return None

    async def apply(self, tx: Tx, event: Event, prepared: Any) -> None:  # noqa: ARG002
        await self.fn(tx, event)


def prepares(handler: EventHandler) -> bool:
    return bool(getattr(handler, "prepares", True))


class PreparesTogether(EventHandler, Protocol):
    """A handler whose prepare step is cheaper for many events at once (one batch call
    to another service instead of one call each). The consumer calls ``prepare_many``
    once for the unordered events of a bus batch that this handler takes, then applies
    each event in its own transaction with what was prepared for it, exactly as if
    ``prepare`` had returned it; an exception in the list is that event's failure
    (retried, parked or dead-lettered as a ``prepare`` that raised it), an exception
    raised by the call is every one of those events' failure."""

    async def prepare_many(self, events: Sequence[Event]) -> list[Any]:
        """One prepared value (or the Exception its ``prepare`` would raise) per event,
        in order."""


def prepares_together(handler: EventHandler) -> bool:
    return callable(getattr(handler, "prepare_many", None))
