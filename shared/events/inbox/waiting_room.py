"""The waiting room of early ordered events: held in memory until their predecessor
applies in this process, then applied at once (the bus redelivers them after a delay
anyway, should this process stop or the predecessor apply elsewhere)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from shared.events.bus import Delivery
from shared.events.inbox.apply import Gap, subject_key
from shared.events.inbox.outcomes import APPLIED

WAITING_ROOM_LIMIT = 10_000  # early events held in memory per consumer


class WaitingRoom:
    """Early deliveries per subject key and sequence, and the last applied sequence
    per subject as seen here (a hint: the transaction always checks the database)."""

    def __init__(self, limit: int = WAITING_ROOM_LIMIT) -> None:
        self.limit = limit
        self._rooms: dict[str, dict[int, Delivery]] = {}
        self._count = 0
        self._last_known: dict[str, int] = {}
        # The entries being applied from here: parked before, though it may be their
        # first delivery.
        self._releasing: set[tuple[str, str]] = set()

    def learn(self, delivery: Delivery, result: str | Gap) -> None:
        """What an attempt at an ordered event told of its subject; a delivery that
        settled leaves the room."""
        key = subject_key(delivery.event)
        known = self._last_known.get(key, 0)
        if isinstance(result, Gap):
            self._last_known[key] = max(known, result.expected - 1)
            return
        if result == APPLIED:
            self._last_known[key] = max(known, delivery.event.sequence)
        self.leave(delivery)

    def wait(self, delivery: Delivery) -> None:
        if self._count >= self.limit:
            return  # the bus's redelivery brings it back anyway
        room = self._rooms.setdefault(subject_key(delivery.event), {})
        if delivery.event.sequence not in room:
            self._count += 1
        room[delivery.event.sequence] = delivery

    def leave(self, delivery: Delivery) -> None:
        """Takes the delivery out, if it is the one waiting for its place."""
        key = subject_key(delivery.event)
        room = self._rooms.get(key)
        if room is None:
            return
        waiting = room.get(delivery.event.sequence)
        if waiting is not None and (waiting.stream, waiting.entry_id) == (
            delivery.stream,
            delivery.entry_id,
        ):
            del room[delivery.event.sequence]
            self._count -= 1
            if not room:
                del self._rooms[key]

    def chains(self, run_size: int) -> Iterator[list[Delivery]]:
        """Per subject, the waiting deliveries that may apply now, taken out of the
        room: the stale ones, then the next in sequence, up to ``run_size``. Each
        chain is chosen when it is reached, after the previous ones were applied."""
        for key in list(self._rooms):
            room = self._rooms.get(key, {})
            last = self._last_known.get(key, 0)
            chain = [room[seq] for seq in sorted(room) if seq <= last]  # stale by now
            following = last + 1
            while following in room and len(chain) < run_size:
                chain.append(room[following])
                following += 1
            if not chain:
                continue
            for delivery in chain:
                self.leave(delivery)
            yield chain

    @contextmanager
    def releasing(self, chain: Sequence[Delivery]) -> Iterator[None]:
        """While the chain's deliveries are being applied from the room."""
        self._releasing = {(d.stream, d.entry_id) for d in chain}
        try:
            yield
        finally:
            self._releasing = set()

    def may_have_parked(self, delivery: Delivery) -> bool:
        """Whether the entry may have a park count to drop when it settles: a
        redelivery, or a first delivery released from the room."""
        return delivery.delivery_count > 1 or (delivery.stream, delivery.entry_id) in (
            self._releasing
        )
