"""Group commit of allocations: concurrent ``POST /allocations`` requests are queued
and applied together in one database transaction, each in its own SAVEPOINT.

- A request that fails (insufficient stock, a duplicate order, a bug) rolls back to its
  savepoint: only its own effect, idempotency record and events disappear.
- The idempotency record of each request (kept completed, with the response) is written
  inside the request's savepoint, so it commits if and only if the effect does; replays,
  422 on another payload and 409 while in progress keep ``IdempotencyStore`` semantics.
- The next batch forms while the current one commits; an idle service takes a lone
  request at once (no waiting window). After a large batch, the drain waits up to a
  millisecond for its callers' next requests (``_linger``), so they form one batch.
- A batch is planned ahead, on a snapshot, outside the writer's turn; the turn is
  held only to write it, after checking that the plan still holds (decision 0020).
  When it does not (stock taken, a key or an order committed meanwhile, a channel
  rule created, a shortage to decide), the batch is planned again on the locked
  positions in the turn, as before.
- Every caller is answered only after the commit. A batch that fails as a whole (a lost
  connection, a serialization failure) is replayed one request per transaction, so a
  failure stays the failing request's own.

``TALLY_ALLOCATION_GROUP_COMMIT=0`` runs every request in its own transaction through
``IdempotencyStore.run_once`` (the path before group commit: the benchmark's baseline).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar import Response
from prometheus_client import Histogram
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from process_apis.availability.allocations import service
from process_apis.availability.allocations.batch import (
    StaleStock,
    allocate_many,
    plan_many,
    still_planned_alike,
    write_planned,
)
from process_apis.availability.schemas import (
    Allocation,
    AllocationIn,
    request_fingerprint,
    without_customer,
)
from shared.db import Database, Tx, is_conflict, retrying_conflicts, savepoint
from shared.idempotency import IdempotencyStore, Ident, StoredRecord
from shared.refusals import Refusal

log = logging.getLogger("tally.availability")

GROUP_COMMIT_ENV = "TALLY_ALLOCATION_GROUP_COMMIT"
MAX_BATCH = 128
# See ``_linger``: the wait, and the batch size after which a drain waits.
LINGER_SECONDS = 0.001
LINGER_AFTER = 8

Outcome = Response[Any] | BaseException

BATCH_SIZE = Histogram(
    "tally_allocation_batch_size",
    "Allocation requests applied together in one transaction (group commit)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)


@dataclass(slots=True)
class _Request:
    client_id: str
    key: str
    data: AllocationIn
    fingerprint: str
    answer: asyncio.Future[Response[Any]]


@dataclass(slots=True)
class _Decided:
    outcomes: list[Outcome | None]  # answered from a key record (replay or refusal)
    runnable: list[int]  # the requests to allocate
    first_of: dict[Ident, int]  # the first request of each key


def group_commit_enabled() -> bool:
    return os.environ.get(GROUP_COMMIT_ENV, "1").strip().lower() not in ("0", "false", "off")


class AllocationBatcher:
    def __init__(
        self,
        db: Database,
        store: IdempotencyStore,
        *,
        max_batch: int = MAX_BATCH,
        enabled: bool | None = None,
        plan_ahead: bool = True,
    ) -> None:
        self.db = db
        self.store = store
        self.max_batch = max_batch
        self.enabled = group_commit_enabled() if enabled is None else enabled
        self.plan_ahead = plan_ahead
        self._last_size = 0
        self._wanted = 0  # the queue length a lingering drain waits for
        self._filled = asyncio.Event()
        self._queue: deque[_Request] = deque()
        self._worker: asyncio.Task[None] | None = None

    async def submit(self, client_id: str, key: str, data: AllocationIn) -> Response[Any]:
        """Allocate ``data`` once per (client, key); answers after the commit."""
        if not self.enabled:
            return await self._alone_in_run_once(client_id, key, data)
        answer: asyncio.Future[Response[Any]] = asyncio.get_running_loop().create_future()
        self._queue.append(_Request(client_id, key, data, request_fingerprint(data), answer))
        if self._wanted and len(self._queue) >= self._wanted:
            self._filled.set()
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain(), name="allocation-batcher")
        return await answer

    async def _alone_in_run_once(
        self, client_id: str, key: str, data: AllocationIn
    ) -> Response[Any]:
        async def effect(tx: Tx) -> tuple[int, Allocation]:
            return 201, await service.allocate(tx, data, key)

        return await self.store.run_once(
            client_id=client_id, key=key, payload=without_customer(data), effect=effect
        )

    # -- the worker -------------------------------------------------------------------

    async def _drain(self) -> None:
        while self._queue:
            batch: list[_Request] = []
            try:
                await self._linger()
                batch = self._take()
                self._last_size = len(batch)
                outcomes = await self._outcomes(batch) if batch else []
            except BaseException as exc:  # cancelled at shutdown: nobody waits forever
                for request in [*batch, *self._queue]:
                    _settle(request, exc)
                self._queue.clear()
                raise
            for request, outcome in zip(batch, outcomes, strict=True):
                _settle(request, outcome)

    async def _linger(self) -> None:
        """After a large batch its callers' next requests arrive together, a few at a
        time: waiting (at most ``LINGER_SECONDS``) until as many are queued lets them
        form one batch, instead of a batch of the first few with the rest waiting
        behind it. After a small batch (an idle service) nothing waits."""
        wanted = self._last_size
        if wanted < LINGER_AFTER or len(self._queue) >= wanted:
            return
        self._wanted = wanted
        self._filled.clear()
        try:
            await asyncio.wait_for(self._filled.wait(), LINGER_SECONDS)
        except TimeoutError:
            pass
        finally:
            self._wanted = 0

    async def _outcomes(self, batch: list[_Request]) -> list[Outcome]:
        """Planned ahead when it may be (``_planned_ahead``), else on the locked
        positions; if that fails as a whole, one request per transaction."""
        if self.plan_ahead:
            try:
                answered = await self._planned_ahead(batch)
            except Exception:
                log.warning("planning an allocation batch ahead failed", exc_info=True)
                answered = None
            if answered is not None:
                return answered
        try:
            async with self.db.transaction() as tx:
                BATCH_SIZE.observe(len(batch))
                return await self._apply(tx, batch)
        except Exception:
            if len(batch) > 1:
                log.warning(
                    "allocation batch of %d failed; replaying one by one",
                    len(batch),
                    exc_info=True,
                )
            return [await self._alone(request) for request in batch]

    async def _planned_ahead(self, batch: list[_Request]) -> list[Outcome] | None:
        """The batch planned on a snapshot, outside the writer's turn, then written in
        it (decision 0020): the turn is held for the writes only. None when the plan
        may not be written that way (a shortage, channel rules, an expired key record)
        or the write found the stock or the configuration changed, or a key or order
        taken meanwhile: the batch then takes the locked path, nothing written."""
        async with self.db.snapshot() as conn:
            known = await self._lookup(conn, batch, expire=False)
            if known is None:
                return None
            decided = self._decide(batch, known)
            planned = await plan_many(conn, self._runnable(batch, decided), locked=False)
        if not planned.settled:
            return None
        answered, records = self._answer(batch, known, decided, planned.outcomes)
        try:
            async with self.db.transaction() as tx:
                if not await still_planned_alike(tx.conn, planned):
                    raise StaleStock("the channel configuration changed")
                await write_planned(tx, planned)
                await self.store.insert_completed(tx.conn, records)
        except (StaleStock, IntegrityError):
            return None
        BATCH_SIZE.observe(len(batch))
        return answered

    def _take(self) -> list[_Request]:
        """Up to ``max_batch`` queued requests whose callers still wait."""
        batch: list[_Request] = []
        while self._queue and len(batch) < self.max_batch:
            request = self._queue.popleft()
            if not request.answer.done():
                batch.append(request)
        return batch

    async def _alone(self, request: _Request) -> Outcome:
        async def once() -> Outcome:
            async with self.db.transaction() as tx:
                outcome = await self._apply_each(tx, request)
                if isinstance(outcome, Exception) and is_conflict(outcome):
                    raise outcome  # rolls back, and goes again
                return outcome

        try:  # a deadlock victim alone in its transaction may simply go again
            return await retrying_conflicts(once, what="an allocation")
        except Exception as exc:
            return exc

    async def _apply(self, tx: Tx, batch: list[_Request]) -> list[Outcome]:
        """The batch in one pass (``batch.allocate_many``) on the locked positions:
        replays and refused keys are answered from the key records, the rest allocated
        together, their key records written in one statement."""
        known = await self._lookup(tx.conn, batch)
        assert known is not None
        decided = self._decide(batch, known)
        results = await allocate_many(tx, self._runnable(batch, decided))
        answered, records = self._answer(batch, known, decided, results)
        await self.store.insert_completed(tx.conn, records)
        return answered

    def _decide(self, batch: list[_Request], known: dict[Ident, Any]) -> _Decided:
        """What the key records answer; the requests left to allocate. A key seen twice
        in the batch is answered from the first one's outcome (``_answer``)."""
        decided = _Decided([None] * len(batch), [], {})
        for n, request in enumerate(batch):
            ident = (request.client_id, request.key)
            if ident in decided.first_of:
                continue
            decided.first_of[ident] = n
            try:
                replayed = self.store.check(known.get(ident), request.fingerprint)
            except Refusal as exc:
                decided.outcomes[n] = exc
                continue
            if replayed is not None:
                decided.outcomes[n] = replayed
            else:
                decided.runnable.append(n)
        return decided

    @staticmethod
    def _runnable(batch: list[_Request], decided: _Decided) -> list[tuple[AllocationIn, str]]:
        return [(batch[n].data, batch[n].key) for n in decided.runnable]

    def _answer(
        self,
        batch: list[_Request],
        known: dict[Ident, Any],
        decided: _Decided,
        results: list[Allocation | Refusal],
    ) -> tuple[list[Outcome], list[dict[str, Any]]]:
        """Every request's answer, and the key records of the allocations made."""
        outcomes = list(decided.outcomes)
        records: list[dict[str, Any]] = []
        now = datetime.now(UTC)
        for n, result in zip(decided.runnable, results, strict=True):
            if isinstance(result, Refusal):
                outcomes[n] = result
                continue
            request = batch[n]
            body = msgspec.json.encode(result)
            record, known[(request.client_id, request.key)] = self._completed(request, body, now)
            records.append(record)
            outcomes[n] = Response(body, status_code=201, media_type="application/json")
        answered: list[Outcome] = []
        for n, request in enumerate(batch):
            ident = (request.client_id, request.key)
            first = decided.first_of[ident]
            if n == first:
                outcome = outcomes[n]
                assert outcome is not None
                answered.append(outcome)
            else:  # a repeat of a key seen earlier in the batch
                answered.append(
                    self._repeat(known.get(ident), request, batch[first], answered[first])
                )
        return answered, records

    def _repeat(
        self, stored: Any, request: _Request, first: _Request, first_outcome: Outcome
    ) -> Outcome:
        """A key's second request in one batch: the first one's answer replayed, 422 for
        another payload; when the first was refused (nothing stored), the same refusal."""
        try:
            replayed = self.store.check(stored, request.fingerprint)
        except Refusal as exc:
            return exc
        if replayed is not None:
            return replayed
        if request.fingerprint == first.fingerprint:
            return first_outcome
        return Refusal(
            409,
            "request-in-progress",
            "Another request with this Idempotency-Key was being processed; retry.",
            headers={"Retry-After": "1"},
        )

    async def _apply_each(self, tx: Tx, request: _Request) -> Outcome:
        """One request on the per-request path (``service.allocate``): the fallback
        when a whole batch failed."""
        conn = tx.conn
        try:
            replayed = await self.store.stored_answer(
                conn, request.client_id, request.key, request.fingerprint
            )
        except Refusal as exc:
            return exc
        if replayed is not None:
            return replayed
        try:
            async with savepoint(conn):
                result = await service.allocate(tx, request.data, request.key)
                body = msgspec.json.encode(result)
                record, _ = self._completed(request, body, datetime.now(UTC))
                await self.store.insert_completed(conn, [record])
        except Exception as exc:
            tx.events_written.clear()
            return await self._after_failure(conn, request, exc)
        return Response(body, status_code=201, media_type="application/json")

    async def _lookup(
        self, conn: AsyncConnection, batch: list[_Request], *, expire: bool = True
    ) -> dict[Ident, Any] | None:
        """The stored records of the batch's keys (``IdempotencyStore.lookup_many``)."""
        idents = [(request.client_id, request.key) for request in batch]
        return await self.store.lookup_many(conn, idents, expire=expire)

    def _completed(
        self, request: _Request, body: bytes, now: datetime
    ) -> tuple[dict[str, Any], StoredRecord]:
        """The request's key record, completed with its 201 answer."""
        return self.store.completed_record(
            request.client_id,
            request.key,
            request.fingerprint,
            201,
            body,
            resource_id=request.data.order_id,
            now=now,
        )

    async def _after_failure(
        self, conn: AsyncConnection, request: _Request, exc: Exception
    ) -> Outcome:
        """On PostgreSQL another process may have committed the same key meanwhile (our
        order insert or key insert then fails): that request's answer is replayed. On
        SQLite nobody else writes during the transaction, so the failure is the answer."""
        if self.db.sqlite or not isinstance(exc, Refusal | IntegrityError):
            return exc
        try:
            replayed = await self.store.replay_committed(
                request.client_id, request.key, request.fingerprint, conn=conn
            )
        except Refusal as refused:
            return refused
        return replayed if replayed is not None else exc


def _settle(request: _Request, outcome: Outcome) -> None:
    if request.answer.done():  # the caller went away; its effect (if any) is committed
        return
    if isinstance(outcome, asyncio.CancelledError):
        request.answer.cancel()
    elif isinstance(outcome, BaseException):
        request.answer.set_exception(outcome)
    else:
        request.answer.set_result(outcome)
