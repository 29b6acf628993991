"""What happens to a delivery that did not apply: parked (a gap before it, or
``NotYet``) and redelivered after a short delay, retried after a handler's failure
with backoff, or moved to the stream's dead letters once its budget is spent. Park
counts are kept per bus entry (``event_attempts``): the bus's delivery count includes
the parks, which must not count as failures."""

from __future__ import annotations

import logging
import random
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import Table, bindparam, delete, func, select

from shared.db import Database
from shared.events.bus import Delivery, EventBus
from shared.events.inbox.handlers import is_not_yet
from shared.events.inbox.outcomes import DEAD_LETTERED, PARKED, RETRIED
from shared.events.inbox.policy import RetryPolicy
from shared.events.inbox.tables import InboxTables, dialect_insert
from shared.events.inbox.waiting_room import WaitingRoom

log = logging.getLogger("tally.inbox")

_REASON_LIMIT = 2000  # characters of a dead letter's reason


def failure_reason(exc: BaseException, deliveries: int) -> str:
    """``Type: message`` first, then the last frames of the traceback."""
    head = f"{type(exc).__name__}: {exc} (after {deliveries} deliveries)"
    frames = "".join(traceback.format_tb(exc.__traceback__, limit=-4))
    reason = f"{head}\nTraceback (most recent call last, last 4 frames):\n{frames}".rstrip()
    if len(reason) > _REASON_LIMIT:
        reason = reason[: _REASON_LIMIT - 3] + "..."
    return reason


# Built once per table (a statement built per park cost more than running it).
@cache
def _parks_query(attempts: Table) -> Any:
    return select(
        attempts.c.stream, attempts.c.entry_id, attempts.c.event_id, attempts.c.parks
    ).where(attempts.c.entry_id.in_(bindparam("entries", expanding=True)))


@cache
def _parks_upsert(attempts: Table, sqlite: bool) -> Any:
    upsert = dialect_insert(attempts, sqlite=sqlite)
    return upsert.on_conflict_do_update(
        index_elements=["stream", "entry_id"],
        set_={
            "event_id": upsert.excluded.event_id,
            "parks": upsert.excluded.parks,
            "updated_at": func.now(),
        },
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Parking:
    """Parks, retries and dead-letters the deliveries of ``group``."""

    db: Database
    bus: EventBus
    group: str
    tables: InboxTables
    policy: RetryPolicy
    rng: random.Random
    waiting: WaitingRoom

    async def parks_of(self, deliveries: Sequence[Delivery]) -> dict[tuple[str, str], int]:
        """How often each bus entry was parked before. A replayed dead letter is a new
        entry, so it starts afresh; a row of another event under the same entry id (a
        log that was reset) counts nothing."""
        wanted = {(d.stream, d.entry_id): d.event.id for d in deliveries}
        async with self.db.lookup() as conn:
            rows = await conn.execute(
                _parks_query(self.tables.attempts),
                {"entries": sorted({entry for _, entry in wanted})},
            )
            return {
                (row.stream, row.entry_id): int(row.parks)
                for row in rows
                if wanted.get((row.stream, row.entry_id)) == row.event_id
            }

    async def _record_parks(self, parked: Sequence[tuple[Delivery, int]]) -> None:
        upsert = _parks_upsert(self.tables.attempts, self.db.sqlite)
        rows = [
            {"stream": d.stream, "entry_id": d.entry_id, "event_id": d.event.id, "parks": n}
            for d, n in parked
        ]
        async with self.db.transaction() as tx:
            await tx.conn.execute(upsert, rows)

    async def forget(self, delivery: Delivery) -> None:
        """Drops the entry's park count."""
        attempts = self.tables.attempts
        async with self.db.transaction() as tx:
            await tx.conn.execute(
                delete(attempts).where(
                    attempts.c.stream == delivery.stream,
                    attempts.c.entry_id == delivery.entry_id,
                )
            )

    async def dead_letter(self, delivery: Delivery, reason: str) -> str:
        event = delivery.event
        log.error(
            "dead-lettering %s %s (entry %s of %s, delivery %d): %s",
            event.type,
            event.id,
            delivery.entry_id,
            delivery.stream,
            delivery.delivery_count,
            reason.splitlines()[0],
        )
        await self.bus.dead_letter(self.group, delivery, reason)
        await self.forget(delivery)  # a replay starts afresh
        self.waiting.leave(delivery)
        return DEAD_LETTERED

    async def park_many(self, parking: Sequence[tuple[Delivery, str, bool]]) -> list[str]:
        """Redeliver later, each up to ``max_parks`` deliveries: ``(delivery, why it
        waits, waiting)``. A gap before an ordered event waits a short delay (its
        predecessor is usually close behind, and the waiting room applies it as soon as
        the predecessor applies here); a handler's NotYet (``waiting``) waits the
        failure backoff (a dependency may be out for a while)."""
        if not parking:
            return []
        before = await self.parks_of([d for d, _, _ in parking])
        outcomes: list[str] = []
        later: list[tuple[Delivery, int, float]] = []
        for delivery, why, waiting in parking:
            parks = before.get((delivery.stream, delivery.entry_id), 0) + 1
            if parks >= self.policy.max_parks:
                reason = f"{why} (after {parks} deliveries)"
                outcomes.append(await self.dead_letter(delivery, reason))
                continue
            delay = (
                self.policy.retry_delay(parks, self.rng)
                if waiting
                else self.policy.park_delay(parks, self.rng)
            )
            later.append((delivery, parks, delay))
            outcomes.append(PARKED)
        if later:
            await self._record_parks([(d, n) for d, n, _ in later])
            for delivery, _, delay in later:
                await self.bus.retry_later(self.group, delivery, delay)
        return outcomes

    async def failed(self, delivery: Delivery, exc: Exception) -> str:
        """The handler raised: retry with backoff, or dead-letter after max_deliveries."""
        event = delivery.event
        if is_not_yet(exc):
            log.info("%s %s cannot apply yet: %s", event.type, event.id, exc)
            why = f"never ready: {type(exc).__name__}: {exc}"
            return (await self.park_many([(delivery, why, True)]))[0]
        parks = (await self.parks_of([delivery])).get((delivery.stream, delivery.entry_id), 0)
        failures = max(1, delivery.delivery_count - parks)
        if failures >= self.policy.max_deliveries:
            return await self.dead_letter(delivery, failure_reason(exc, failures))
        delay = self.policy.retry_delay(failures, self.rng)
        log.warning(
            "handler failed for %s %s (failure %d of %d), retrying in %.2fs",
            event.type,
            event.id,
            failures,
            self.policy.max_deliveries,
            delay,
            exc_info=exc,
        )
        await self.bus.retry_later(self.group, delivery, delay)
        return RETRIED
