"""What the actors did, for each other (which orders exist, which shipped): the actors'
coordination only. The report never reads it: its figures come from the platform."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Journal:
    orders: dict[int, str] = field(default_factory=dict)  # intent index -> order id
    placed_lines: int = 0
    intended_lines: int = 0  # of the intents acted on, placed or not
    _progress: asyncio.Condition = field(default_factory=asyncio.Condition)
    outcomes: Counter[str] = field(default_factory=Counter)  # placed, refused, cart_expired...
    # Insertion-ordered (a dict as an ordered set): the customers read only what was
    # added since their last pass.
    shipped_orders: dict[str, None] = field(default_factory=dict)
    returned_orders: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    kills: Counter[str] = field(default_factory=Counter)  # --chaos: services killed

    async def acted_on(self, lines: int) -> None:
        async with self._progress:
            self.intended_lines += lines
            self._progress.notify_all()

    async def until_acted_on(self, lines: float) -> None:
        """Until the channels have acted on at least ``lines`` of the day's lines."""
        async with self._progress:
            await self._progress.wait_for(lambda: self.intended_lines >= lines)

    def failed(self, what: str, status: int, text: str) -> None:
        if len(self.errors) < 50:
            self.errors.append(f"{what}: {status} {text[:200]}")
        self.outcomes["unexpected_answer"] += 1
