"""The sender of a durable queue (decision 0026): the loop the queue senders share.

A queue row is written in the transaction that wants it sent, so it survives a crash
and an outage of the partner. A sender claims the due rows (``claim``), sends them all
at once (``send``, one outcome per row) and records the outcomes in one transaction
(``record``). When none of a batch went through (``went_through``: sent, or refused for
good) the partner is taken to be away and the sender backs off, 0.5 s doubling to 10 s;
one row through resets the back-off and the sender goes on at once while rows are
due. With nothing due it waits ``every`` seconds, or until ``wake()``."""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from typing import ClassVar, Generic, TypeVar

from shared.waiting import sleep_or_wake

Row = TypeVar("Row")
Outcome = TypeVar("Outcome")


class QueueSender(ABC, Generic[Row, Outcome]):
    """Subclasses set ``name`` (what the sender does, for the log line of a failed
    turn: ``"{name} failed"``) and ``log``, and implement the four steps."""

    name: ClassVar[str]
    log: ClassVar[logging.Logger]
    first_backoff: ClassVar[float] = 0.5
    max_backoff: ClassVar[float] = 10.0

    def __init__(self, *, batch: int = 32, every: float = 1.0, stale_after: float = 15.0) -> None:
        self.batch = batch
        self.every = every
        self.stale_after = stale_after
        self._wake = asyncio.Event()
        self.backoff = 0.0

    def wake(self) -> None:
        self._wake.set()

    @abstractmethod
    async def claim(self) -> list[Row]:
        """Claims up to ``batch`` due rows (a claim older than ``stale_after`` is due
        again); returns those claimed."""

    @abstractmethod
    async def send(self, row: Row) -> Outcome:
        """Sends one claimed row; the outcome says what to record (never raises for a
        partner that is away or refuses)."""

    @abstractmethod
    async def record(self, outcomes: list[Outcome]) -> None:
        """Records the outcomes of a batch, in one transaction."""

    @abstractmethod
    def went_through(self, outcome: Outcome) -> bool:
        """True when the row is settled (sent, or refused for good)."""

    def _backed_off(self) -> float:
        return min(max(self.backoff * 2, self.first_backoff), self.max_backoff)

    async def once(self) -> int:
        """Sends what is due; returns how many went through."""
        rows = await self.claim()
        if not rows:
            return 0
        outcomes = list(await asyncio.gather(*(self.send(row) for row in rows)))
        await self.record(outcomes)
        through = sum(1 for outcome in outcomes if self.went_through(outcome))
        # One row through means the partner is back (a half-open circuit's probe
        # refuses the others of the batch): no back-off then, the rest go at once.
        self.backoff = 0.0 if through else self._backed_off()
        return through

    async def __call__(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                sent = await self.once()
            except Exception:
                self.log.exception("%s failed", self.name)
                sent, self.backoff = 0, self._backed_off()
            if sent and not self.backoff:
                continue  # more may be due
            await sleep_or_wake(self._wake, self.backoff or self.every)
