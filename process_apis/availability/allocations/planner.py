"""Where each requested line is taken from, under the channel's warehouse strategy:
locations ranked by most ATP (the default), by a priority list, or by distance from
the ship-to region; a line may be split across locations or must come from one.
Lots within a location are always combined. Pure: it decides on the locked book, the
writes are the service's."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from process_apis.availability.positions.book import PositionBook
from process_apis.availability.positions.ledger import PositionKey

Plan = list[list[tuple[PositionKey, int]]]
Ranking = Literal["most_stock", "priority", "nearest"]
FAR = 1 << 62  # distance of a region nobody measured: after every measured one


class Line(Protocol):
    @property
    def sku(self) -> str: ...
    @property
    def quantity(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Strategy:
    ranking: Ranking = "most_stock"
    split: bool = True
    priority: tuple[str, ...] = ()
    eligible: frozenset[str] | None = None  # None: every location


@dataclass(frozen=True, slots=True)
class Geography:
    region_of: Mapping[str, str] = field(default_factory=dict)  # location -> region
    distances: Mapping[tuple[str, str], int] = field(default_factory=dict)

    def distance(self, ship_to: str, location_id: str) -> int:
        region = self.region_of.get(location_id)
        if region is None:
            return FAR
        if region == ship_to:
            return 0
        return self.distances.get((ship_to, region), self.distances.get((region, ship_to), FAR))


MOST_STOCK = Strategy()


def _rank(
    strategy: Strategy,
    location_id: str,
    free_here: int,
    ship_to: str | None,
    geography: Geography,
) -> tuple[int, int, str]:
    first = 0
    if strategy.ranking == "priority":
        order = strategy.priority
        first = order.index(location_id) if location_id in order else len(order)
    elif strategy.ranking == "nearest" and ship_to is not None:
        first = geography.distance(ship_to, location_id)
    return (first, -free_here, location_id)


def free_by_position(book: PositionBook) -> dict[PositionKey, int]:
    """What each position can give: its ATP, never below zero, less its share of what
    the positions of its location lack. A location's ATP is the sum over its lots, so
    one short position (safety stock kept on the lot-less position, decision 0024)
    holds back the location's lotted stock too."""
    free: dict[PositionKey, int] = {}
    lacking: dict[tuple[str, str], int] = {}
    for key in book.values:
        atp = book.atp(key)
        free[key] = max(0, atp)
        if atp < 0:
            lacking[(key.sku, key.location_id)] = lacking.get((key.sku, key.location_id), 0) - atp
    for (sku, location_id), owed in sorted(lacking.items()):
        for key in sorted(book.keys_at(sku, location_id), key=lambda k: (free[k], k.lot)):
            held = min(free[key], owed)
            free[key] -= held
            owed -= held
    return free


def plan_allocation(
    book: PositionBook,
    lines: Sequence[Line],
    strategy: Strategy = MOST_STOCK,
    *,
    limits: Mapping[str, int] | None = None,
    ship_to: str | None = None,
    geography: Geography | None = None,
) -> Plan:
    """One list of (position, quantity) per line, covering as much of it as there is;
    lines of the same sku share what is left after the earlier ones, and what
    ``limits`` allows per sku (a channel's allowance)."""
    geography = geography or Geography()
    free = free_by_position(book)
    allowed = dict(limits or {})
    plan: Plan = []
    for line in lines:
        by_location: dict[str, list[PositionKey]] = {}
        for key in free:
            eligible = strategy.eligible is None or key.location_id in strategy.eligible
            if key.sku == line.sku and free[key] > 0 and eligible:
                by_location.setdefault(key.location_id, []).append(key)
        need = min(line.quantity, allowed.get(line.sku, line.quantity))
        ranked = sorted(
            by_location.items(),
            key=lambda item: _rank(
                strategy, item[0], sum(free[k] for k in item[1]), ship_to, geography
            ),
        )
        if not strategy.split and ranked:
            # One location per line: the first ranked that covers it, else the fullest.
            whole = [item for item in ranked if sum(free[k] for k in item[1]) >= need]
            ranked = whole[:1] or [max(ranked, key=lambda item: sum(free[k] for k in item[1]))]
        takes: list[tuple[PositionKey, int]] = []
        for _location, keys in ranked:
            for key in sorted(keys, key=lambda k: (-free[k], k.lot)):
                take = min(free[key], need)
                if take:
                    free[key] -= take
                    need -= take
                    takes.append((key, take))
            if not need:
                break
        if line.sku in allowed:
            allowed[line.sku] -= planned(takes)
        plan.append(takes)
    return plan


def planned(takes: list[tuple[PositionKey, int]]) -> int:
    return sum(q for _, q in takes)
