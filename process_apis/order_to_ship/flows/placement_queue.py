"""Concurrent single placements taken together (decision 0060): ``POST
/orders/v1/orders`` requests that arrive while earlier ones are being checked and
written wait in a queue, and the next turn takes them all as one ``write_new`` of
``flows/place_batch.py``: one key lookup, one ERP terms read per customer (each
order's credit check counts the customer's orders ahead of it, so two concurrent
orders of one customer cannot both pass under the limit), one transaction writing them
``pending``. Their allocation and settle (one availability call, one transaction) then
go on beside the next turn. Each caller gets the answer its single saga would give;
an idle service takes a lone request at once (no waiting window).

A turn that fails as a whole (a lost database connection) places each of its orders
by the single saga: the keys make that safe whatever the turn wrote.

``TALLY_PLACEMENT_QUEUE=0`` places every request by the single saga (the benchmark's
baseline)."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
from collections import deque
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar import Response

from process_apis.order_to_ship.flows.place_batch import (
    Answer,
    Placement,
    Written,
    finish,
    write_new,
)
from process_apis.order_to_ship.flows.place_order import PlaceOrder
from process_apis.order_to_ship.orders.schemas import OrderIn
from shared.auth.principal import Principal
from shared.correlation import correlation_id

log = logging.getLogger("tally.orders.place")

QUEUE_ENV = "TALLY_PLACEMENT_QUEUE"
# The most orders one turn takes (availability allocates up to 100 in one call).
MAX_TURN = 100


@dataclass(slots=True)
class _Waiting:
    placement: Placement
    answer: asyncio.Future[Response[Any]]


def queue_enabled() -> bool:
    return os.environ.get(QUEUE_ENV, "1").strip().lower() not in ("0", "false", "off")


class PlacementQueue:
    def __init__(
        self, place: PlaceOrder, *, max_turn: int = MAX_TURN, enabled: bool | None = None
    ) -> None:
        self.place = place
        self.max_turn = max_turn
        self.enabled = queue_enabled() if enabled is None else enabled
        self._queue: deque[_Waiting] = deque()
        self._worker: asyncio.Task[None] | None = None

    async def run(self, principal: Principal, key: str, data: OrderIn) -> Response[Any]:
        """Places ``data`` as ``PlaceOrder.run`` would, taken with the requests that
        wait beside it."""
        if not self.enabled:
            return await self.place.run(principal, key, data)
        answer: asyncio.Future[Response[Any]] = asyncio.get_running_loop().create_future()
        placement = Placement(principal, key, data, correlation_id.get())
        self._queue.append(_Waiting(placement, answer))
        if self._worker is None or self._worker.done():
            # A context of its own, not the first caller's: each turn sets its own.
            self._worker = asyncio.create_task(
                self._drain(), name="placement-queue", context=contextvars.Context()
            )
        return await answer

    async def _drain(self) -> None:
        while self._queue:
            turn = self._take()
            if not turn:
                continue
            placements = [waiting.placement for waiting in turn]
            # The turn's calls (the ERP's terms, availability's batch) carry its first
            # request's correlation id; each order's history and events its own.
            correlation_id.set(placements[0].correlation_id)
            try:
                written = await write_new(self.place, placements)
            except asyncio.CancelledError:
                for waiting in [*turn, *self._queue]:
                    waiting.answer.cancel()
                self._queue.clear()
                raise
            except Exception:
                log.warning("placing %d orders together failed", len(turn), exc_info=True)
                for waiting in turn:
                    self.place.kept(self._alone(waiting))
                continue
            self.place.kept(self._finish(turn, written))

    def _take(self) -> list[_Waiting]:
        """Up to ``max_turn`` waiting requests, a (client, key) once: a repeat waits for
        the next turn, where it finds the first one's key (a replay, or 409 while that
        one is in progress)."""
        turn: list[_Waiting] = []
        taken: set[tuple[str, str]] = set()
        later: list[_Waiting] = []
        while self._queue and len(turn) < self.max_turn:
            waiting = self._queue.popleft()
            if waiting.answer.done():  # its caller went away before it was taken
                continue
            ident = (waiting.placement.principal.client_id, waiting.placement.key)
            if ident in taken:
                later.append(waiting)
            else:
                taken.add(ident)
                turn.append(waiting)
        self._queue.extendleft(reversed(later))
        return turn

    async def _finish(self, turn: list[_Waiting], written: Written) -> None:
        placements = [waiting.placement for waiting in turn]
        try:
            answers = await finish(self.place, placements, written)
        except Exception:
            log.warning("settling %d orders together failed", len(turn), exc_info=True)
            await asyncio.gather(*(self._alone(waiting) for waiting in turn))
            return
        for waiting, answer in zip(turn, answers, strict=True):
            _answer(waiting, answer)

    async def _alone(self, waiting: _Waiting) -> None:
        p = waiting.placement
        correlation_id.set(p.correlation_id)  # a task of its own: its context only
        try:
            answer: Answer = await self.place.run(p.principal, p.key, p.order)
        except Exception as exc:
            answer = exc
        _answer(waiting, answer)


def _answer(waiting: _Waiting, answer: Answer) -> None:
    if waiting.answer.done():  # the caller went away; the order stands under its key
        return
    if isinstance(answer, Exception):
        waiting.answer.set_exception(answer)
    elif isinstance(answer, Response):
        waiting.answer.set_result(answer)
    else:
        status, order = answer
        body = msgspec.json.encode(order)
        waiting.answer.set_result(Response(body, status_code=status, media_type="application/json"))
