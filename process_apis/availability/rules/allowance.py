"""What one buyer (a channel, maybe on behalf of a customer group) may take of a sku:
the eligible locations' ATP, minus what fences keep for others and have not used,
capped by the channel's cap. The arithmetic is pure; ``load_terms`` reads its inputs
and must run under the sku's position locks when the answer guards a write."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from process_apis.availability.db import (
    allocation_groups,
    allocation_lines,
    allocations,
    channel_rules,
    hold_lines,
)
from process_apis.availability.positions.book import PositionBook
from process_apis.availability.schemas import ChannelView

# Buckets that make stock unsellable whoever asks (not claims of a buyer).
UNSELLABLE = ("external_committed", "quality_control", "damaged", "hold", "safety_stock")

Beneficiary = tuple[str, str]  # ("channel", name) | ("group", name)


@dataclass(frozen=True, slots=True)
class Buyer:
    channel: str
    customer_group: str | None = None

    def owns(self, rule: Rule) -> bool:
        return rule.beneficiary in (("channel", self.channel), ("group", self.customer_group))


@dataclass(frozen=True, slots=True)
class Rule:
    rule_id: str
    sku: str
    kind: str
    channel: str | None
    customer_group: str | None
    quantity: int | None
    percent: int | None

    @property
    def beneficiary(self) -> Beneficiary:
        if self.customer_group is not None:
            return ("group", self.customer_group)
        return ("channel", self.channel or "")

    def size(self, sellable: int) -> int:
        if self.quantity is not None:
            return self.quantity
        return (self.percent or 0) * sellable // 100


@dataclass(frozen=True, slots=True)
class Terms:
    """The inputs of one sku's channel arithmetic."""

    rules: list[Rule]
    used: dict[Beneficiary, int]  # open allocations + active holds per beneficiary
    sellable: int


def sellable_of(book: PositionBook, sku: str) -> int:
    """On hand less what nobody may sell, per location (never below zero), summed."""
    total = 0
    for location_id in book.locations_of(sku):
        keys = book.keys_at(sku, location_id)
        on_hand = sum(book.get(k, "on_hand") for k in keys)
        blocked = sum(book.get(k, b) for k in keys for b in UNSELLABLE)
        total += max(0, on_hand - blocked)
    return total


def eligible_available(book: PositionBook, sku: str, eligible: Collection[str] | None) -> int:
    return sum(
        max(0, sum(book.atp(k) for k in book.keys_at(sku, location_id)))
        for location_id in book.locations_of(sku)
        if eligible is None or location_id in eligible
    )


def channel_view(available: int, terms: Terms, buyer: Buyer) -> tuple[int, ChannelView]:
    fenced = sum(
        max(0, rule.size(terms.sellable) - terms.used.get(rule.beneficiary, 0))
        for rule in terms.rules
        if rule.kind == "fence" and not buyer.owns(rule)
    )
    caps = [r for r in terms.rules if r.kind == "cap" and r.channel == buyer.channel]
    cap_left = (
        max(
            0,
            min(r.size(terms.sellable) for r in caps)
            - terms.used.get(("channel", buyer.channel), 0),
        )
        if caps
        else None
    )
    answer = max(0, available - fenced)
    if cap_left is not None:
        answer = min(answer, cap_left)
    return answer, ChannelView(
        eligible_available=available, fenced_for_others=fenced, cap_remaining=cap_left
    )


def as_rule(row: object) -> Rule:
    return Rule(
        rule_id=row.rule_id,  # type: ignore[attr-defined]
        sku=row.sku,  # type: ignore[attr-defined]
        kind=row.kind,  # type: ignore[attr-defined]
        channel=row.channel,  # type: ignore[attr-defined]
        customer_group=row.customer_group,  # type: ignore[attr-defined]
        quantity=row.quantity,  # type: ignore[attr-defined]
        percent=row.percent,  # type: ignore[attr-defined]
    )


_RULES_OF = (
    select(channel_rules)
    .where(channel_rules.c.sku.in_(bindparam("skus", expanding=True)))
    .order_by(channel_rules.c.rule_id)
)


async def rules_of(conn: AsyncConnection, skus: Iterable[str]) -> dict[str, list[Rule]]:
    rows = await conn.execute(_RULES_OF, {"skus": sorted(set(skus))})
    found: dict[str, list[Rule]] = {}
    for row in rows:
        found.setdefault(row.sku, []).append(as_rule(row))
    return found


async def used_by(conn: AsyncConnection, sku: str, now: datetime) -> dict[Beneficiary, int]:
    """Open allocated and actively held units of ``sku``, per channel and per group."""
    open_qty = (
        allocation_lines.c.quantity - allocation_lines.c.shipped - allocation_lines.c.released
    )
    used: dict[Beneficiary, int] = {}

    def add(kind: str, rows: Iterable[Any]) -> None:
        for name, quantity in rows:
            if name is not None and quantity:
                used[(kind, name)] = used.get((kind, name), 0) + int(quantity)

    claims = allocation_lines.join(
        allocations, allocations.c.allocation_id == allocation_lines.c.allocation_id
    )
    add(
        "channel",
        (
            await conn.execute(
                select(allocations.c.channel, func.sum(open_qty))
                .select_from(claims)
                .where(allocation_lines.c.sku == sku)
                .group_by(allocations.c.channel)
            )
        ).all(),
    )
    grouped = allocation_lines.join(
        allocation_groups, allocation_groups.c.allocation_id == allocation_lines.c.allocation_id
    )
    add(
        "group",
        (
            await conn.execute(
                select(allocation_groups.c.customer_group, func.sum(open_qty))
                .select_from(grouped)
                .where(allocation_lines.c.sku == sku)
                .group_by(allocation_groups.c.customer_group)
            )
        ).all(),
    )
    active = (hold_lines.c.sku == sku, hold_lines.c.active == 1, hold_lines.c.expires_at > now)
    for column, kind in ((hold_lines.c.channel, "channel"), (hold_lines.c.customer_group, "group")):
        add(
            kind,
            (
                await conn.execute(
                    select(column, func.sum(hold_lines.c.quantity)).where(*active).group_by(column)
                )
            ).all(),
        )
    return used


async def load_terms(
    conn: AsyncConnection, book: PositionBook, skus: Iterable[str], now: datetime
) -> dict[str, Terms]:
    """Terms of every sku that has rules (a sku without rules needs none)."""
    rules = await rules_of(conn, skus)
    return {
        sku: Terms(rules=found, used=await used_by(conn, sku, now), sellable=sellable_of(book, sku))
        for sku, found in rules.items()
    }
