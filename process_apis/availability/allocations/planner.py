"""Where each requested line is taken from: the location with the most ATP first,
splitting a line across locations (and lots) when one does not hold enough. Pure:
it decides on the locked book, the writes are the service's."""

from __future__ import annotations

from collections.abc import Sequence

from process_apis.availability.positions.book import PositionBook
from process_apis.availability.positions.ledger import PositionKey
from process_apis.availability.schemas import AllocationLineIn

Plan = list[list[tuple[PositionKey, int]]]


def plan_allocation(book: PositionBook, lines: Sequence[AllocationLineIn]) -> Plan:
    """One list of (position, quantity) per line, covering as much of it as there is;
    lines of the same sku share what is left after the earlier ones."""
    free = {key: max(0, book.atp(key)) for key in book.values}
    plan: Plan = []
    for line in lines:
        by_location: dict[str, list[PositionKey]] = {}
        for key in free:
            if key.sku == line.sku and free[key] > 0:
                by_location.setdefault(key.location_id, []).append(key)
        ranked = sorted(
            by_location.items(), key=lambda item: (-sum(free[k] for k in item[1]), item[0])
        )
        takes: list[tuple[PositionKey, int]] = []
        need = line.quantity
        for _location, keys in ranked:
            for key in sorted(keys, key=lambda k: (-free[k], k.lot)):
                take = min(free[key], need)
                if take:
                    free[key] -= take
                    need -= take
                    takes.append((key, take))
            if not need:
                break
        plan.append(takes)
    return plan


def planned(takes: list[tuple[PositionKey, int]]) -> int:
    return sum(q for _, q in takes)
