"""How much a credit takes back of an invoice line (pure functions, decision 0034).

A line is known by what was invoiced (units, net, tax) and what credit notes already
took (units, net, tax). What remains is credited pro rata: k of the r remaining units
take round_half_up(remaining net * k / r) and the same of the remaining tax; the last
units of a line take exactly the remainder, so a full return credits the line to the
minor unit whatever the earlier returns and price corrections left of it.

A price correction to a lower unit price credits what the remaining units were billed
above the new price: remaining net - new price * remaining units, with the remaining
tax in the same proportion (all of it when the price goes to 0).

Returned units are placed on the order's invoices oldest first, on the lines of their
sku with units left to credit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from process_apis.billing.tax.calculator import round_half_up


@dataclass(frozen=True)
class LineRoom:
    """One sku of one invoice: invoiced and already credited figures (minor units)."""

    sku: str
    quantity: int
    net: int
    tax: int
    credited_quantity: int = 0
    credited_net: int = 0
    credited_tax: int = 0

    @property
    def units_left(self) -> int:
        return self.quantity - self.credited_quantity

    @property
    def net_left(self) -> int:
        return self.net - self.credited_net

    @property
    def tax_left(self) -> int:
        return self.tax - self.credited_tax


@dataclass(frozen=True)
class CreditLine:
    sku: str
    quantity: int
    net: int
    tax: int


@dataclass(frozen=True)
class InvoiceRoom:
    invoice_id: str
    lines: Mapping[str, LineRoom]  # by sku


@dataclass
class Placement:
    """Credit lines per invoice, oldest invoice first, and the units no invoice had
    room for (not invoiced yet)."""

    credits: list[tuple[str, list[CreditLine]]] = field(default_factory=list)
    unplaced: dict[str, int] = field(default_factory=dict)


def units_credit(line: LineRoom, units: int) -> CreditLine:
    """The net and tax of ``units`` returned units of ``line`` (1 <= units <= left)."""
    left = line.units_left
    if not 0 < units <= left:
        raise ValueError(f"{line.sku}: {units} units asked, {left} left to credit")
    if units == left:
        return CreditLine(line.sku, units, max(0, line.net_left), max(0, line.tax_left))
    net = round_half_up(max(0, line.net_left) * units, left)
    tax = round_half_up(max(0, line.tax_left) * units, left)
    return CreditLine(line.sku, units, net, tax)


def price_credit(line: LineRoom, unit_price: int) -> CreditLine | None:
    """The credit that brings the line's remaining units down to ``unit_price`` each;
    None when that is not lower than what they are billed now."""
    left, net_left, tax_left = line.units_left, line.net_left, line.tax_left
    if left <= 0 or net_left <= 0:
        return None
    target = unit_price * left
    if target >= net_left:
        return None
    net = net_left - target
    tax = tax_left if target == 0 else min(tax_left, round_half_up(tax_left * net, net_left))
    return CreditLine(line.sku, 0, net, max(0, tax))


def place_units(invoices: Sequence[InvoiceRoom], units: Mapping[str, int]) -> Placement:
    """Credits for returned ``units`` per sku across ``invoices`` (oldest first)."""
    placement = Placement()
    wanted = {sku: n for sku, n in units.items() if n > 0}
    for invoice in invoices:
        lines: list[CreditLine] = []
        for sku in sorted(wanted):
            need = wanted[sku]
            line = invoice.lines.get(sku)
            if need <= 0 or line is None or line.units_left <= 0:
                continue
            take = min(need, line.units_left)
            lines.append(units_credit(line, take))
            wanted[sku] = need - take
        if lines:
            placement.credits.append((invoice.invoice_id, lines))
    placement.unplaced = {sku: n for sku, n in wanted.items() if n > 0}
    return placement
