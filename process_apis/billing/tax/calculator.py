"""Taxes of an invoice: the calculator billing asks, and the rate table built in.

``TaxCalculator`` is the seam: anything that answers ``calculate`` (an external tax
service's adapter, say) replaces the built-in ``RateTable``. It is given the invoice's
currency, the ship-to region and the lines (sku, the item's tax class, quantity, net
amount in minor units) and answers one ``LineTax`` per line, in the same order.

The rate table holds rates in basis points (1/100 of a percent: 1900 = 19 %) by
(region, tax class); ``*`` is a fallback for either. A lookup tries, in order,
(region, class), (region, ``*``), (``*``, class), (``*``, ``*``); no match is 0 %.
Tax is rounded per line, half up, in minor units: ``tax = floor((net * bp + 5000) /
10000)`` (decision 0034).

Configured by ``TALLY_BILLING_TAX_RATES``: comma-separated ``region/class=bp`` items,
e.g. ``DE/standard=1900,DE/reduced=700,*/exempt=0,*/*=2000``. Unset, the table is
``DEFAULT_RATES`` (a demonstration table, documented in docs/partners.md).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Protocol

import msgspec

ANY = "*"
RATES_ENV = "TALLY_BILLING_TAX_RATES"

# (region, tax class) -> basis points. A distributor sets its own through the
# environment; this one taxes every region's standard goods at 20 %, reduced-rate goods
# at 5 % and exempt or zero-rated goods at nothing; an unknown class pays the standard rate.
DEFAULT_RATES: dict[tuple[str, str], int] = {
    (ANY, "standard"): 2000,
    (ANY, "reduced"): 500,
    (ANY, "zero"): 0,
    (ANY, "exempt"): 0,
    (ANY, ANY): 2000,
}


class TaxLine(msgspec.Struct, frozen=True):
    sku: str
    tax_class: str
    quantity: int
    net_minor: int


class LineTax(msgspec.Struct, frozen=True):
    tax_minor: int
    code: str  # an Identifier: names the rate applied (``DE-standard-1900``)
    rate_bp: int


class TaxCalculator(Protocol):
    async def calculate(
        self, currency: str, region: str | None, lines: Sequence[TaxLine]
    ) -> list[LineTax]:
        """One ``LineTax`` per line, in order."""
        ...


def round_half_up(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded to the nearest integer, halves up (both >= 0)."""
    if numerator < 0 or denominator <= 0:
        raise ValueError("round_half_up takes a non-negative numerator, positive denominator")
    return (2 * numerator + denominator) // (2 * denominator)


def line_tax(net_minor: int, rate_bp: int) -> int:
    """The tax of one line: net * rate, rounded half up to a minor unit."""
    return round_half_up(net_minor * rate_bp, 10_000)


def _code_part(value: str) -> str:
    return "any" if value == ANY else value


class RateTable:
    """The built-in calculator: rates by (region, tax class) with ``*`` fallbacks."""

    def __init__(self, rates: Mapping[tuple[str, str], int] | None = None) -> None:
        table = dict(DEFAULT_RATES if rates is None else rates)
        for key, bp in table.items():
            if not 0 <= bp <= 100_000:
                raise ValueError(f"tax rate {key}: {bp} basis points is out of range")
        self.rates = table

    def rate(self, region: str | None, tax_class: str) -> tuple[str, int]:
        """(code, basis points) of the first match; none matches: ("none", 0)."""
        place = region or ANY
        for key in ((place, tax_class), (place, ANY), (ANY, tax_class), (ANY, ANY)):
            if key in self.rates:
                bp = self.rates[key]
                return f"{_code_part(key[0])}-{_code_part(key[1])}-{bp}", bp
        return "none", 0

    async def calculate(
        self,
        currency: str,  # noqa: ARG002 - rates are percentages: the same in every currency
        region: str | None,
        lines: Sequence[TaxLine],
    ) -> list[LineTax]:
        taxes = []
        for line in lines:
            code, bp = self.rate(region, line.tax_class)
            taxes.append(LineTax(line_tax(line.net_minor, bp), code, bp))
        return taxes


def parse_rates(raw: str) -> dict[tuple[str, str], int]:
    """``DE/standard=1900,*/*=2000`` -> {("DE", "standard"): 1900, ("*", "*"): 2000}."""
    rates: dict[tuple[str, str], int] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        key, sep, value = item.partition("=")
        region, slash, tax_class = key.strip().partition("/")
        if not (sep and slash and region and tax_class and value.strip().isdigit()):
            raise ValueError(f"{RATES_ENV}: expected region/class=basis_points, not {item!r}")
        rates[(region.strip(), tax_class.strip())] = int(value.strip())
    return rates


def rate_table_from_env() -> RateTable:
    raw = os.environ.get(RATES_ENV, "").strip()
    return RateTable(parse_rates(raw) if raw else None)
