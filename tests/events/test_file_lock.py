"""FileLock and lead (shared/leader.py): the writer's turn and the leader of a service
across processes. Two FileLock objects on one path conflict like two processes would
(flock locks belong to the open file, not to the process)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from shared.leader import FileLock, lead


async def test_one_holder_at_a_time_and_a_waiter_gets_it_on_release(tmp_path: Path) -> None:
    first, second = FileLock(tmp_path / "turn.lock"), FileLock(tmp_path / "turn.lock")
    assert first.try_acquire()
    assert not second.try_acquire()
    waiting = asyncio.create_task(second.acquire())
    await asyncio.sleep(0.1)
    assert not waiting.done()  # blocked while the first holds it
    first.release()
    await asyncio.wait_for(waiting, timeout=5)
    assert second.held and not first.try_acquire()
    second.close()
    assert first.try_acquire()
    first.close()


async def test_a_cancelled_waiter_leaves_nothing_locked(tmp_path: Path) -> None:
    first, second = FileLock(tmp_path / "turn.lock"), FileLock(tmp_path / "turn.lock")
    assert first.try_acquire()
    waiting = asyncio.create_task(second.acquire())
    await asyncio.sleep(0.1)
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    first.release()
    await asyncio.sleep(0.2)  # the abandoned thread may take the lock: closing freed it
    third = FileLock(tmp_path / "turn.lock")
    assert third.try_acquire()
    third.close()
    first.close()


async def test_lead_waits_for_the_leader_to_go_and_stops_on_request(tmp_path: Path) -> None:
    leader, follower = FileLock(tmp_path / "svc.leader"), FileLock(tmp_path / "svc.leader")
    assert leader.try_acquire()
    stop = asyncio.Event()
    waiting = asyncio.create_task(lead(follower, stop, retry_seconds=0.05))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    leader.close()  # the leader's process died: the kernel drops its lock
    assert await asyncio.wait_for(waiting, timeout=5)
    assert follower.held

    stop.set()
    assert not await lead(FileLock(tmp_path / "svc.leader"), stop, retry_seconds=0.05)
    follower.close()
