"""Stored channel rules."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from process_apis.availability.db import channel_rules
from process_apis.availability.refusals import DuplicateRule, InvalidRule
from process_apis.availability.rules.schemas import ChannelRule, ChannelRuleIn


def _out(row: Any) -> ChannelRule:
    return ChannelRule(
        rule_id=row.rule_id,
        sku=row.sku,
        kind=row.kind,
        channel=row.channel,
        customer_group=row.customer_group,
        quantity=None if row.quantity is None else int(row.quantity),
        percent=row.percent,
        updated_at=row.updated_at,
    )


def validate(data: ChannelRuleIn) -> None:
    if (data.quantity is None) == (data.percent is None):
        raise InvalidRule("Give exactly one of quantity and percent.")
    if data.kind == "cap" and (data.channel is None or data.customer_group is not None):
        raise InvalidRule("A cap names a channel (and no customer group).")
    if data.kind == "fence" and (data.channel is None) == (data.customer_group is None):
        raise InvalidRule("A fence names exactly one of channel and customer_group.")


async def read(conn: AsyncConnection, rule_id: str) -> ChannelRule | None:
    row = (
        await conn.execute(select(channel_rules).where(channel_rules.c.rule_id == rule_id))
    ).first()
    return _out(row) if row else None


async def listed(
    conn: AsyncConnection, sku: str | None, after: str, limit: int
) -> list[ChannelRule]:
    query = (
        select(channel_rules)
        .where(channel_rules.c.rule_id > after)
        .order_by(channel_rules.c.rule_id)
        .limit(limit)
    )
    if sku is not None:
        query = query.where(channel_rules.c.sku == sku)
    return [_out(r) for r in await conn.execute(query)]


async def write(
    conn: AsyncConnection, rule_id: str, data: ChannelRuleIn, now: datetime
) -> ChannelRule:
    """Create or replace the rule. One rule per (sku, kind, channel or group)."""
    clash = (
        await conn.execute(
            select(channel_rules.c.rule_id).where(
                channel_rules.c.sku == data.sku,
                channel_rules.c.kind == data.kind,
                channel_rules.c.rule_id != rule_id,
                (channel_rules.c.channel == data.channel)
                if data.channel is not None
                else channel_rules.c.channel.is_(None),
                (channel_rules.c.customer_group == data.customer_group)
                if data.customer_group is not None
                else channel_rules.c.customer_group.is_(None),
            )
        )
    ).first()
    if clash is not None:
        raise DuplicateRule(f"Rule {clash.rule_id} already sets this {data.kind} for {data.sku}.")
    await conn.execute(delete(channel_rules).where(channel_rules.c.rule_id == rule_id))
    await conn.execute(
        insert(channel_rules).values(
            rule_id=rule_id,
            sku=data.sku,
            kind=data.kind,
            channel=data.channel,
            customer_group=data.customer_group,
            quantity=data.quantity,
            percent=data.percent,
            updated_at=now,
        )
    )
    found = await read(conn, rule_id)
    assert found is not None
    return found


async def remove(conn: AsyncConnection, rule_id: str) -> str | None:
    """Deletes the rule; returns its sku (None when there was none)."""
    found = await read(conn, rule_id)
    if found is None:
        return None
    await conn.execute(delete(channel_rules).where(channel_rules.c.rule_id == rule_id))
    return found.sku
