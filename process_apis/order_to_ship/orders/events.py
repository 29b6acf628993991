"""What the orders API emits: source ``tally.orders``, sequence = the order's version
(``order.accepted``, ``order.status_changed``, ``order.cancelled``). The facts it
consumes are handled in ``warehouse/events.py`` and ``flows/backorders.py``."""

from __future__ import annotations

EVENT_SOURCE = "tally.orders"
CONSUMER_GROUP = "order_to_ship"
STOCK_CONSUMER_GROUP = "order_to_ship_stock"
