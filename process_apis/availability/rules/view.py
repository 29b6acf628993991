"""The channel's side of an item's availability: ``channel_available`` and how."""

from __future__ import annotations

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
from process_apis.availability.schemas import ItemAvailability
from process_apis.availability.strategies.repository import strategy_of


async def for_channel(
    conn: AsyncConnection, item: ItemAvailability, buyer: Buyer, now: datetime
) -> ItemAvailability:
    book = await PositionBook.read(conn, [item.sku], now)
    strategy = await strategy_of(conn, buyer.channel)
    terms = (await load_terms(conn, book, [item.sku], now)).get(item.sku, Terms([], {}, 0))
    available, view = channel_view(
        eligible_available(book, item.sku, strategy.eligible), terms, buyer
    )
    return msgspec.structs.replace(
        item,
        channel=buyer.channel,
        customer_group=buyer.customer_group,
        channel_available=available,
        channel_view=view,
    )
