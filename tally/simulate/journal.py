"""What the actors did, for each other (which orders exist, which shipped): the actors'
coordination only. The report never reads it: its figures come from the platform."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Journal:
    orders: dict[int, str] = field(default_factory=dict)  # intent index -> order id
    placed_lines: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)  # placed, refused, cart_expired...
    shipped_orders: set[str] = field(default_factory=set)
    returned_orders: set[str] = field(default_factory=set)
    paid_invoices: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    kills: Counter[str] = field(default_factory=Counter)  # --chaos: services killed

    def failed(self, what: str, status: int, text: str) -> None:
        if len(self.errors) < 50:
            self.errors.append(f"{what}: {status} {text[:200]}")
        self.outcomes["unexpected_answer"] += 1
