"""An order line's quantities and the only ways they change (decision 0026).

``ordered``      what the customer asked for (never changes)
``allocated``    units claimed from availability for the line, shipped ones included
``backordered``  units wanted and not allocated yet
``released``     allocated units sent to a warehouse (fulfillment orders)
``picked``       released units picked and waiting on the dock (not shipped, not put back)
``shipped``      units that left a warehouse
``delivered``    shipped units the carrier delivered
``cancelled``    units the order no longer wants (cancelled, short-closed, short-picked)
``invoiced``     shipped units billing invoiced
``returned``     shipped units returned (the returns issue fills it)

Once the order is accepted every unit is allocated, backordered or cancelled. Each
operation checks its own bound and the invariants after it, so no caller can write a
line that breaks them (a Hypothesis state machine drives them in the tests).
"""

from __future__ import annotations

from dataclasses import dataclass, fields


class QuantityRefused(ValueError):
    """An operation that would break the line's invariants: nothing changed."""


@dataclass(slots=True)
class LineQuantities:
    sku: str
    ordered: int
    allocated: int = 0
    backordered: int = 0
    released: int = 0
    picked: int = 0
    shipped: int = 0
    delivered: int = 0
    cancelled: int = 0
    invoiced: int = 0
    returned: int = 0

    # -- what the line still needs -------------------------------------------------
    @property
    def wanted(self) -> int:
        return self.ordered - self.cancelled

    @property
    def open_to_ship(self) -> int:
        return self.wanted - self.shipped

    @property
    def unplanned(self) -> int:
        """Neither allocated, backordered nor cancelled: only while pending."""
        return self.ordered - self.allocated - self.backordered - self.cancelled

    @property
    def unreleased(self) -> int:
        return self.allocated - self.released

    @property
    def at_warehouse(self) -> int:
        """Released, not picked and not shipped: a warehouse may still short or cancel it."""
        return self.released - self.picked - self.shipped

    def violations(self) -> list[str]:
        found = [
            f"{f.name} < 0" for f in fields(self) if f.name != "sku" and getattr(self, f.name) < 0
        ]
        rules = {
            "allocated + backordered + cancelled <= ordered": self.unplanned >= 0,
            "released <= allocated": self.released <= self.allocated,
            "picked + shipped <= released": self.picked + self.shipped <= self.released,
            "shipped <= ordered - cancelled": self.shipped <= self.wanted,
            "delivered <= shipped": self.delivered <= self.shipped,
            "invoiced <= shipped": self.invoiced <= self.shipped,
            "returned <= shipped": self.returned <= self.shipped,
        }
        return found + [rule for rule, holds in rules.items() if not holds]

    def _changed(self, **deltas: int) -> None:
        before = {name: getattr(self, name) for name in deltas}
        for name, delta in deltas.items():
            setattr(self, name, getattr(self, name) + delta)
        broken = self.violations()
        if broken:
            for name, value in before.items():
                setattr(self, name, value)
            raise QuantityRefused(f"{self.sku}: {', '.join(broken)}")

    @staticmethod
    def _positive(quantity: int) -> None:
        if quantity <= 0:
            raise QuantityRefused(f"a quantity must be positive, not {quantity}")

    # -- the operations ---------------------------------------------------------------
    def plan(self, allocated: int, backordered: int) -> None:
        """Acceptance: every unplanned unit becomes allocated or backordered."""
        if allocated < 0 or backordered < 0 or allocated + backordered != self.unplanned:
            raise QuantityRefused(
                f"{self.sku}: {allocated} + {backordered} do not cover {self.unplanned} units"
            )
        self._changed(allocated=allocated, backordered=backordered)

    def fill(self, quantity: int) -> None:
        self._positive(quantity)
        if quantity > self.backordered:
            raise QuantityRefused(f"{self.sku}: {quantity} > {self.backordered} backordered")
        self._changed(backordered=-quantity, allocated=quantity)

    def release(self, quantity: int) -> None:
        self._positive(quantity)
        if quantity > self.unreleased:
            raise QuantityRefused(f"{self.sku}: {quantity} > {self.unreleased} unreleased")
        self._changed(released=quantity)

    def pick(self, quantity: int) -> None:
        self._positive(quantity)
        self._changed(picked=quantity)

    def put_away(self, quantity: int) -> None:
        self._positive(quantity)
        self._changed(picked=-quantity)

    def ship(self, quantity: int) -> None:
        """Shipped units come off the dock first (picked), then straight from the shelf."""
        self._positive(quantity)
        self._changed(shipped=quantity, picked=-min(self.picked, quantity))

    def deliver(self, quantity: int) -> None:
        self._positive(quantity)
        self._changed(delivered=quantity)

    def invoice(self, quantity: int) -> None:
        self._positive(quantity)
        self._changed(invoiced=quantity)

    def count_returned(self, quantity: int) -> None:
        """The units the order's live RMAs hold (``returns/``, decision 0033): recounted
        from them on every change of one, never above what shipped."""
        if quantity < 0:
            raise QuantityRefused(f"{self.sku}: returned cannot be {quantity}")
        self._changed(returned=quantity - self.returned)

    def cancel_backordered(self, quantity: int) -> None:
        self._positive(quantity)
        self._changed(backordered=-quantity, cancelled=quantity)

    def cancel_unreleased(self, quantity: int) -> None:
        self._positive(quantity)
        if quantity > self.unreleased:
            raise QuantityRefused(f"{self.sku}: {quantity} > {self.unreleased} unreleased")
        self._changed(allocated=-quantity, cancelled=quantity)

    def withdraw(self, quantity: int, *, backorder: bool) -> None:
        """Released units the warehouse gives back unshipped (a line cancelled there, or a
        short pick): they leave the allocation and are backordered again or cancelled."""
        self._positive(quantity)
        if quantity > self.at_warehouse:
            raise QuantityRefused(f"{self.sku}: {quantity} > {self.at_warehouse} at the warehouse")
        again = {"backordered": quantity} if backorder else {"cancelled": quantity}
        self._changed(released=-quantity, allocated=-quantity, **again)
