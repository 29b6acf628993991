"""``--chaos``: kills a service of the platform at random every few seconds (SIGKILL:
no clean shutdown, in-flight transactions lost) while the day runs. The supervisor
(`tally up`) starts it again; the parties retry what failed with the same keys. The
report must still show nothing lost and nothing done twice."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
from collections import Counter
from pathlib import Path

from shared.topology import SERVICES
from tally.supervisor import pid_file

# The gateway is killed too: partners' connections drop, as they would.
VICTIMS = tuple(spec.name for spec in SERVICES)


class Chaos:
    def __init__(self, data_dir: Path, seed: int, every_seconds: float) -> None:
        self.data_dir = data_dir
        self.rng = random.Random(seed + 3)
        self.every_seconds = every_seconds
        self.kills: Counter[str] = Counter()
        self.stop = asyncio.Event()

    def kill_one(self) -> str | None:
        """SIGKILL one running service; its name, or None when none could be found."""
        for name in self.rng.sample(VICTIMS, len(VICTIMS)):
            try:
                pid = int(pid_file(self.data_dir, name).read_text().strip())
                os.kill(pid, signal.SIGKILL)
            except (OSError, ValueError):
                continue  # not running (being restarted) or no pid file: another one
            self.kills[name] += 1
            return name
        return None

    async def run(self, duration: float | None = None) -> None:
        """Kills until ``stop``, or for ``duration`` seconds (the day's planned length:
        on a slow machine the day's orders take longer to place, and killing on would
        only slow them further)."""
        ends = None if not duration else asyncio.get_running_loop().time() + duration
        while not self.stop.is_set():
            if ends is not None and asyncio.get_running_loop().time() >= ends:
                return
            pause = self.rng.uniform(0.5, 1.5) * self.every_seconds
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), pause)
            if not self.stop.is_set():
                self.kill_one()
