"""What the orders API emits: source ``tally.orders``, sequence = the order's version
(``order.accepted``, ``order.status_changed``, ``order.cancelled``). The facts it
consumes are handled in ``warehouse/events.py`` and ``flows/backorders.py``; a run of
them applies in the order of the orders they concern (``order_of``)."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from process_apis.order_to_ship.orders import repository as repo
from shared.db import Tx
from shared.events.envelope import Event

EVENT_SOURCE = "tally.orders"
CONSUMER_GROUP = "order_to_ship"
STOCK_CONSUMER_GROUP = "order_to_ship_stock"


class _Concerns(msgspec.Struct):
    order_id: str | None = None


_CONCERNS = msgspec.json.Decoder(_Concerns)


def order_of(event: Event) -> str:
    """The order a consumed fact concerns ("" for none): the row its handler locks
    first. The service's other writers of several orders (the releaser, the ERP sync)
    lock them in order id order; a run sorted by it does too, so they never deadlock."""
    try:
        return _CONCERNS.decode(event.data).order_id or ""
    except msgspec.DecodeError:
        return ""


# Facts whose handler records them without changing the order.
_LEAVES_ORDER = frozenset({"shipment.delayed"})


async def lock_orders_of_run(tx: Tx, events: Sequence[Event]) -> None:
    """A run's orders, locked and loaded at its start in two statements (decision
    0059); each handler then takes its order from there instead of reading it."""
    await repo.lock_many(tx, {order_of(e) for e in events if e.type not in _LEAVES_ORDER} - {""})
