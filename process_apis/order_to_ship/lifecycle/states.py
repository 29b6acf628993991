"""The order's states and the one table of the moves between them (decision 0026).

Who moves an order: the placement saga (``pending`` to its first settled state), the
operator (``release-hold``, ``reject``), the customer (``cancel``) and the warehouse's
facts (releases, picks, shortages, shipments, deliveries), whose effect on the lines
decides the next state through :func:`operational_status`. Every move goes through
:func:`check_transition`; a move the table does not hold is a 409 and writes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from process_apis.order_to_ship.lifecycle.lines import LineQuantities
from shared.refusals import Refusal

OrderStatus = Literal[
    "pending",
    "accepted",
    "on_hold",
    "backordered",
    "partially_allocated",
    "released",
    "partially_shipped",
    "shipped",
    "delivered",
    "completed",
    "cancelled",
    "rejected",
]
STATUSES: tuple[OrderStatus, ...] = OrderStatus.__args__  # type: ignore[attr-defined]
TERMINAL: frozenset[str] = frozenset({"completed", "cancelled", "rejected"})
# Before anything shipped: the states the lines' allocation decides between.
_UNSHIPPED = frozenset({"accepted", "backordered", "partially_allocated", "released"})
_SHIPPING = frozenset({"partially_shipped", "shipped", "delivered", "completed"})

TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": _UNSHIPPED | {"on_hold", "cancelled", "rejected"},
    "on_hold": _UNSHIPPED | {"cancelled", "rejected"},
    "accepted": (_UNSHIPPED - {"accepted"}) | _SHIPPING - {"completed"} | {"cancelled"},
    "backordered": (_UNSHIPPED - {"backordered"}) | {"cancelled"},
    "partially_allocated": (_UNSHIPPED - {"partially_allocated"})
    | {"partially_shipped", "shipped", "delivered", "cancelled"},
    "released": (_UNSHIPPED - {"released"})
    | {"partially_shipped", "shipped", "delivered", "cancelled"},
    "partially_shipped": frozenset({"shipped", "delivered", "completed"}),
    "shipped": frozenset({"delivered", "completed"}),
    "delivered": frozenset({"completed"}),
    "completed": frozenset(),
    "cancelled": frozenset(),
    "rejected": frozenset(),
}


class IllegalTransition(Refusal):
    def __init__(self, order_id: str, current: str, target: str) -> None:
        super().__init__(
            409,
            "illegal-transition",
            f"Order {order_id} is {current}; it cannot become {target}.",
            # Not "status": that member of a problem is its HTTP status (RFC 9457).
            extra={"order_status": current, "requested_status": target},
        )


def allowed(current: str, target: str) -> bool:
    return target in TRANSITIONS.get(current, frozenset())


def check_transition(order_id: str, current: str, target: str) -> None:
    if current != target and not allowed(current, target):
        raise IllegalTransition(order_id, current, target)


def operational_status(lines: Iterable[LineQuantities]) -> OrderStatus:
    """What the lines say the order is, once it is neither pending, on hold nor ended.

    Shipped units decide first (nothing left to ship: ``shipped``, or ``delivered``
    when every shipped unit arrived, ``completed`` when also invoiced); before any
    shipment, the allocation does (all backordered, some, or none; ``released`` once
    every allocated unit is at a warehouse)."""
    lines = list(lines)
    live = [line for line in lines if line.wanted]
    if not live:
        return "cancelled"
    if any(line.shipped for line in live):
        if any(line.open_to_ship for line in live):
            return "partially_shipped"
        if all(line.delivered >= line.shipped for line in live):
            if all(line.invoiced >= line.shipped for line in live):
                return "completed"
            return "delivered"
        return "shipped"
    if all(line.allocated == 0 for line in live):
        return "backordered"
    if any(line.backordered for line in live):
        return "partially_allocated"
    if all(line.released >= line.allocated for line in live):
        return "released"
    return "accepted"
