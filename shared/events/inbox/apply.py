"""The inbox's transactions. An event's effects commit with its inbox row and, for an
ordered type, with its subject's new last applied sequence: it applies at most once,
and an ordered one only next in sequence (``standing``, the one ordering check).

An event whose handler prepares applies alone (``apply_one``: a read first, so a
duplicate, stale or early event costs no prepare call); the others apply in runs,
several per transaction (``apply_run``). A consumer may give a ``run_order`` (the row
an event locks first, e.g. its order): a run then applies its events sorted by it
(stable: events of one key keep their bus order), so the run takes those locks in the
same global order as the service's other writers and cannot deadlock with them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import bindparam, delete, insert, select

from shared.correlation import correlation_id
from shared.db import Database, Tx
from shared.events.bus import Delivery
from shared.events.envelope import Event
from shared.events.inbox.handlers import EventHandler, prepares
from shared.events.inbox.outcomes import APPLIED, DUPLICATE, IGNORED, STALE
from shared.events.inbox.tables import InboxTables, dialect_insert

NEXT = "next"  # an ordered event whose predecessor has applied: it applies now
NOT_PREPARED: Any = object()  # apply_one prepares the event itself


class Gap(Exception):
    """An ordered event arrived before its predecessor (``expected``) applied."""

    def __init__(self, expected: int) -> None:
        super().__init__(expected)
        self.expected = expected


class Settled(Exception):
    """Leaves the transaction (rolled back) with an outcome that has no effect."""

    def __init__(self, outcome: str) -> None:
        super().__init__(outcome)
        self.outcome = outcome


class HandlerFailed(Exception):
    """A handler raised inside a run: which event (its index), and the exception."""

    def __init__(self, index: int, error: Exception) -> None:
        super().__init__(index, error)
        self.index = index
        self.error = error


def subject_key(event: Event) -> str:
    return f"{event.source}|{event.subject}"


def standing(event: Event, last: int) -> str | Gap:
    """Where an ordered event stands against its subject's last applied sequence:
    NEXT (it applies), STALE (applied before: no effect), or a ``Gap`` before it."""
    if event.sequence <= last:
        return STALE
    if event.sequence > last + 1:
        return Gap(last + 1)
    return NEXT


def _require_next(event: Event, last: int) -> None:
    found = standing(event, last)
    if isinstance(found, Gap):
        raise found
    if found != NEXT:
        raise Settled(found)


class _Statements:
    """The inbox's statements, built once per set of tables and dialect (decision
    0043): every event applied runs some of them."""

    def __init__(self, tables: InboxTables, sqlite: bool) -> None:
        inbox, applied, attempts = tables
        self.record = dialect_insert(inbox, sqlite=sqlite).on_conflict_do_nothing()
        self.record_many = insert(inbox)
        last = select(applied.c.sequence).where(applied.c.subject_key == bindparam("of_subject"))
        self.last = last
        self.last_locked = last.with_for_update()
        self.lasts_locked = (
            select(applied.c.subject_key, applied.c.sequence)
            .where(applied.c.subject_key.in_(bindparam("subjects", expanding=True)))
            .with_for_update()
        )
        upsert = dialect_insert(applied, sqlite=sqlite)
        self.move = upsert.on_conflict_do_update(
            index_elements=["subject_key"], set_={"sequence": upsert.excluded.sequence}
        )
        self.seen = select(inbox.c.event_id).where(
            inbox.c.event_id.in_(bindparam("ids", expanding=True))
        )
        self.one_seen = select(inbox.c.event_id).where(inbox.c.event_id == bindparam("of_event"))
        self.forget_parks = delete(attempts).where(attempts.c.event_id == bindparam("of_event"))
        self.forget_entries = delete(attempts).where(
            attempts.c.stream == bindparam("of_stream"),
            attempts.c.entry_id == bindparam("of_entry"),
        )


@cache
def _statements(tables: InboxTables, sqlite: bool) -> _Statements:
    return _Statements(tables, sqlite)


# Called at the start of a run's transaction with the events it handles, on every
# engine (``run_start``). A service takes there, all at once and in one order, the row
# locks its handlers would take one by one in the events' order (they deadlocked with
# writers that lock the same rows sorted, decision 0058), and may load there what its
# handlers read one by one (``Tx.prefetched``: one statement for the run, not some
# per event, decision 0059).
RunStart = Callable[[Tx, Sequence[Event]], Awaitable[None]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Applier:
    """Applies events through the inbox of ``db``. ``may_have_parked`` tells whether a
    delivery may have a park count to drop when it settles."""

    db: Database
    tables: InboxTables
    handlers: Mapping[str, EventHandler]
    ordered_types: Collection[str]
    may_have_parked: Callable[[Delivery], bool]
    run_order: Callable[[Event], str] | None = None
    run_start: RunStart | None = None

    async def apply_one(
        self,
        delivery: Delivery,
        handler: EventHandler,
        ordered: bool,
        prepared: Any = NOT_PREPARED,
    ) -> None:
        """Applies the event in its own transaction. Raises ``Settled`` (DUPLICATE or
        STALE, nothing written), ``Gap``, or the handler's exception. ``prepared``: what
        the handler's ``prepare_many`` made for it (an exception: raised as its own)."""
        event = delivery.event
        statements = _statements(self.tables, self.db.sqlite)
        key = subject_key(event)
        if isinstance(prepared, Exception):
            raise prepared
        if prepared is NOT_PREPARED:
            prepared = await self._prepare(event, handler, ordered) if prepares(handler) else None
        async with self.db.transaction() as tx:  # a Settled or Gap rolls it back
            inserted = await tx.conn.execute(
                statements.record, {"event_id": event.id, "type": event.type}
            )
            if inserted.rowcount == 0:
                raise Settled(DUPLICATE)
            if ordered:
                last = await tx.conn.scalar(statements.last_locked, {"of_subject": key})
                _require_next(event, last or 0)
            await handler.apply(tx, event, prepared)
            if ordered:
                await tx.conn.execute(
                    statements.move, {"subject_key": key, "sequence": event.sequence}
                )
            if self.may_have_parked(delivery):
                await tx.conn.execute(statements.forget_parks, {"of_event": event.id})

    async def _prepare(self, event: Event, handler: EventHandler, ordered: bool) -> Any:
        """A read first, so a duplicate, stale or early event costs no prepare call."""
        statements = _statements(self.tables, self.db.sqlite)
        async with self.db.lookup() as conn:
            if await conn.scalar(statements.one_seen, {"of_event": event.id}):
                raise Settled(DUPLICATE)
            if ordered:
                last = await conn.scalar(statements.last, {"of_subject": subject_key(event)})
                _require_next(event, last or 0)
        return await handler.prepare(event)

    async def unseen(self, events: Sequence[Event]) -> list[Event]:
        """The events the inbox does not hold yet (one read for all)."""
        seen_ones = _statements(self.tables, self.db.sqlite).seen
        async with self.db.lookup() as conn:
            seen = set(await conn.scalars(seen_ones, {"ids": [e.id for e in events]}))
        return [e for e in events if e.id not in seen]

    async def apply_run(
        self, run: Sequence[tuple[int, Delivery]], prepared: Mapping[int, Any] | None = None
    ) -> dict[int, str | Gap]:
        """Applies the run's events in one transaction; returns each one's outcome (or
        ``Gap``) by its index. ``prepared``: what ``prepare_many`` made for an event, by
        its index (the others' handlers have no prepare step). A handler's exception
        rolls the whole run back and is raised as ``HandlerFailed``."""
        made = prepared or {}
        results: dict[int, str | Gap] = {}
        handled = [(n, d) for n, d in run if d.event.type in self.handlers]
        if self.run_order is not None:
            key = self.run_order
            handled.sort(key=lambda item: key(item[1].event))
        for n, delivery in run:
            if delivery.event.type not in self.handlers:
                results[n] = IGNORED
        if not handled:
            return results
        async with self.db.transaction() as tx:
            seen, lasts = await self._applied_before(tx, [d.event for _, d in handled])
            if self.run_start is not None:
                await self.run_start(tx, [d.event for _, d in handled])
            for n, delivery in handled:
                results[n] = await self._apply_in_run(
                    tx, n, delivery.event, seen, lasts, made.get(n)
                )
            applied = [d.event for n, d in handled if results[n] == APPLIED]
            await self._record_run(
                tx,
                applied,
                {subject_key(e) for e in applied if e.type in self.ordered_types},
                lasts,
                [
                    delivery
                    for n, delivery in handled
                    if self.may_have_parked(delivery) and not isinstance(results[n], Gap)
                ],
            )
        return results

    async def _applied_before(
        self, tx: Tx, events: Sequence[Event]
    ) -> tuple[set[str], dict[str, int]]:
        """Which of the events' ids the inbox holds, and the last applied sequence of
        their ordered subjects (locked for the transaction)."""
        statements = _statements(self.tables, self.db.sqlite)
        ids = sorted({e.id for e in events})
        seen = set(await tx.conn.scalars(statements.seen, {"ids": ids}))
        keys = {subject_key(e) for e in events if e.type in self.ordered_types}
        if not keys:
            return seen, {}
        rows = await tx.conn.execute(statements.lasts_locked, {"subjects": sorted(keys)})
        return seen, {row.subject_key: int(row.sequence) for row in rows}

    async def _apply_in_run(
        self,
        tx: Tx,
        n: int,
        event: Event,
        seen: set[str],
        lasts: dict[str, int],
        prepared: Any = None,
    ) -> str | Gap:
        """One event of a run: DUPLICATE, STALE, a ``Gap``, or APPLIED (then ``seen``
        and ``lasts`` include it, for the run's later events)."""
        if event.id in seen:
            return DUPLICATE
        ordered = event.type in self.ordered_types
        key = subject_key(event)
        if ordered:
            found = standing(event, lasts.get(key, 0))
            if found != NEXT:
                return found
        token = correlation_id.set(event.correlationid)
        try:
            await self.handlers[event.type].apply(tx, event, prepared)
        except Exception as exc:
            raise HandlerFailed(n, exc) from exc
        finally:
            correlation_id.reset(token)
        seen.add(event.id)
        if ordered:
            lasts[key] = event.sequence
        return APPLIED

    async def _record_run(
        self,
        tx: Tx,
        applied_events: Sequence[Event],
        moved: set[str],
        lasts: dict[str, int],
        forget: Sequence[Delivery],
    ) -> None:
        """The run's inbox rows, its subjects' new last sequences and the park counts
        it settled, one statement each."""
        statements = _statements(self.tables, self.db.sqlite)
        if applied_events:
            await tx.conn.execute(
                statements.record_many,
                [{"event_id": e.id, "type": e.type} for e in applied_events],
            )
        if moved:  # one statement for every subject the run moved
            await tx.conn.execute(
                statements.move,
                [{"subject_key": key, "sequence": lasts[key]} for key in sorted(moved)],
            )
        if forget:
            await tx.conn.execute(
                statements.forget_entries,
                [{"of_stream": d.stream, "of_entry": d.entry_id} for d in forget],
            )
