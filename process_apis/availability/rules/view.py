"""The channel's side of an item's availability: ``channel_available`` and how."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import msgspec
from sqlalchemy.ext.asyncio import AsyncConnection

from process_apis.availability.positions.book import PositionBook
from process_apis.availability.rules.allowance import (
    Buyer,
    Terms,
    channel_view,
    eligible_available,
    load_terms,
)
from process_apis.availability.schemas import ChannelView, ItemAvailability
from process_apis.availability.strategies.repository import strategy_of


async def channel_figures(
    conn: AsyncConnection, skus: Sequence[str], buyer: Buyer, now: datetime
) -> dict[str, tuple[int, ChannelView]]:
    """``channel_available`` of each sku and how, read together (one position book,
    one strategy, the rules of every sku at once)."""
    book = await PositionBook.read(conn, list(skus), now)
    strategy = await strategy_of(conn, buyer.channel)
    terms = await load_terms(conn, book, skus, now)
    none = Terms([], {}, 0)
    return {
        sku: channel_view(
            eligible_available(book, sku, strategy.eligible), terms.get(sku, none), buyer
        )
        for sku in skus
    }


async def for_channel(
    conn: AsyncConnection, item: ItemAvailability, buyer: Buyer, now: datetime
) -> ItemAvailability:
    available, view = (await channel_figures(conn, [item.sku], buyer, now))[item.sku]
    return msgspec.structs.replace(
        item,
        channel=buyer.channel,
        customer_group=buyer.customer_group,
        channel_available=available,
        channel_view=view,
    )
