"""An RMA's states and the one table of the moves between them (decision 0033).

``authorized``  the customer may send the units back (the WMS knows the RMA)
``received``    the WMS received units against it; some wait in quality control
``inspected``   every received unit has its final disposition
``closed``      inspected and every authorised unit received, or inspected at expiry
``rejected``    staff refused it before anything arrived
``expired``     nothing arrived before ``expires_at`` (the sweeper)

Who moves an RMA: the WMS's facts (``return.received``: to ``received``;
``return.dispositioned``: to ``inspected``, then ``closed``), staff (``reject``) and
the sweeper (``expired``, or ``closed`` for an inspected one). Every move goes through
:func:`check_transition`; a move the table does not hold is a 409 and writes nothing.
"""

from __future__ import annotations

from typing import Literal

from shared.refusals import Refusal

RmaStatus = Literal["authorized", "received", "inspected", "closed", "rejected", "expired"]
STATUSES: tuple[RmaStatus, ...] = RmaStatus.__args__  # type: ignore[attr-defined]
# Still expecting goods or their inspection: the units count as authorised.
OPEN: frozenset[str] = frozenset({"authorized", "received", "inspected"})
TERMINAL: frozenset[str] = frozenset({"closed", "rejected", "expired"})

TRANSITIONS: dict[str, frozenset[str]] = {
    "authorized": frozenset({"received", "rejected", "expired"}),
    "received": frozenset({"inspected"}),
    # More units arrived after the first ones were all inspected.
    "inspected": frozenset({"received", "closed"}),
    "closed": frozenset(),
    "rejected": frozenset(),
    "expired": frozenset(),
}
# What the WMS is told: it takes receipts against an ``authorized`` RMA only.
WMS_STATUS = {"rejected": "cancelled", "expired": "cancelled"}


class IllegalRmaTransition(Refusal):
    def __init__(self, rma_id: str, current: str, target: str) -> None:
        super().__init__(
            409,
            "illegal-transition",
            f"Return {rma_id} is {current}; it cannot become {target}.",
            extra={"rma_status": current, "requested_status": target},
        )


def allowed(current: str, target: str) -> bool:
    return target in TRANSITIONS.get(current, frozenset())


def check_transition(rma_id: str, current: str, target: str) -> None:
    if current != target and not allowed(current, target):
        raise IllegalRmaTransition(rma_id, current, target)


def counted(status: str, authorized: int, received: int) -> int:
    """The units of one RMA line the order line's ``returned`` counts: all authorised
    while the RMA is open, what arrived once it ended (closed; expired or rejected: none,
    but for a receipt the WMS took before it heard of the end)."""
    return authorized if status in OPEN else received


def wms_status(status: str) -> str:
    return WMS_STATUS.get(status, "authorized")
