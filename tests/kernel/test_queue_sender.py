"""The queue senders' loop (``shared/queue_sender.py``) with a fake sender in memory:
back-off on batches that do not go through, reset on progress, a failed turn logged,
``wake()`` cutting the wait and ``stop`` ending the loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from shared.queue_sender import QueueSender

BACKOFFS = [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


class FakeSender(QueueSender[str, tuple[str, bool]]):
    """Rows are strings; a row goes through unless the partner is ``away``. A claim
    takes up to ``batch`` rows off ``queue``; ``broken`` makes the claim raise."""

    name = "sending fakes"
    log = logging.getLogger("tally.tests.queue_sender")

    def __init__(self, *, batch: int = 2, every: float = 60.0) -> None:
        super().__init__(batch=batch, every=every)
        self.queue: list[str] = []
        self.away = False
        self.broken = False
        self.claims = 0
        self.sent: list[str] = []
        self.recorded: list[list[tuple[str, bool]]] = []

    async def claim(self) -> list[str]:
        self.claims += 1
        if self.broken:
            raise RuntimeError("the database is gone")
        rows, self.queue = self.queue[: self.batch], self.queue[self.batch :]
        return rows

    async def send(self, row: str) -> tuple[str, bool]:
        if self.away:
            self.queue.append(row)  # queued again
            return row, False
        self.sent.append(row)
        return row, True

    async def record(self, outcomes: list[tuple[str, bool]]) -> None:
        self.recorded.append(outcomes)

    def went_through(self, outcome: tuple[str, bool]) -> bool:
        return outcome[1]


async def wait_for(check: Callable[[], bool], timeout: float = 2.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)


async def test_nothing_due_is_no_turn_and_leaves_the_backoff() -> None:
    sender = FakeSender()
    sender.backoff = 4.0
    assert await sender.once() == 0
    assert sender.backoff == 4.0 and sender.recorded == []


async def test_backoff_grows_while_nothing_goes_through_and_resets_on_progress() -> None:
    sender = FakeSender()
    sender.queue = ["a", "b"]
    sender.away = True
    seen = []
    for _ in BACKOFFS:
        assert await sender.once() == 0
        seen.append(sender.backoff)
    assert seen == BACKOFFS
    assert sender.recorded[-1] == [("a", False), ("b", False)]  # recorded all the same

    sender.away = False
    assert await sender.once() == 2
    assert sender.backoff == 0.0 and sender.sent == ["a", "b"]


async def test_one_row_through_is_progress() -> None:
    sender = FakeSender()
    sender.backoff = 8.0

    async def send(row: str) -> tuple[str, bool]:
        return row, row == "b"

    sender.send = send  # type: ignore[method-assign]
    sender.queue = ["a", "b"]
    assert await sender.once() == 1
    assert sender.backoff == 0.0


async def test_a_failed_turn_is_logged_backs_off_and_the_loop_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sender = FakeSender(every=60.0)
    sender.broken = True
    stop = asyncio.Event()
    with caplog.at_level(logging.ERROR, logger="tally.tests.queue_sender"):
        task = asyncio.create_task(sender(stop))
        await wait_for(lambda: sender.claims >= 1)
        assert sender.backoff == 0.5
        # No wake(): the next turn comes after the back-off, not after ``every``.
        await wait_for(lambda: sender.claims >= 2)
        assert sender.backoff == 1.0
        sender.broken = False
        sender.queue = ["a"]
        sender.wake()
        await wait_for(lambda: sender.sent == ["a"])
        stop.set()
        sender.wake()
        await asyncio.wait_for(task, 2.0)
    failed = [r for r in caplog.records if r.getMessage() == "sending fakes failed"]
    assert len(failed) >= 2 and all(r.exc_info for r in failed)
    assert sender.backoff == 0.0


async def test_wake_cuts_the_wait_and_stop_ends_the_loop() -> None:
    sender = FakeSender(every=60.0)
    stop = asyncio.Event()
    task = asyncio.create_task(sender(stop))
    await wait_for(lambda: sender.claims == 1)  # nothing due: waits ``every``
    sender.queue = ["a"]
    sender.wake()
    await wait_for(lambda: sender.sent == ["a"])
    stop.set()
    sender.wake()
    await asyncio.wait_for(task, 2.0)
    assert task.done() and task.exception() is None


async def test_a_full_batch_through_goes_on_at_once() -> None:
    sender = FakeSender(batch=2, every=60.0)
    sender.queue = ["a", "b", "c", "d", "e"]
    stop = asyncio.Event()
    task = asyncio.create_task(sender(stop))
    # No wake(): while rows go through the loop does not wait ``every``.
    await wait_for(lambda: sender.sent == ["a", "b", "c", "d", "e"])
    stop.set()
    sender.wake()
    await asyncio.wait_for(task, 2.0)


async def test_a_stop_set_before_the_start_runs_no_turn() -> None:
    sender = FakeSender()
    stop = asyncio.Event()
    stop.set()
    await asyncio.wait_for(sender(stop), 1.0)
    assert sender.claims == 0
