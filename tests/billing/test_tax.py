"""The built-in tax calculator: rates by region and tax class with fallbacks, per-line
rounding half up in minor units, the table from the environment."""

from __future__ import annotations

import asyncio

import pytest

from process_apis.billing.tax.calculator import (
    DEFAULT_RATES,
    RATES_ENV,
    RateTable,
    TaxLine,
    line_tax,
    parse_rates,
    rate_table_from_env,
    round_half_up,
)


def test_rounding_is_half_up_per_line_in_minor_units() -> None:
    assert line_tax(1000, 1900) == 190
    assert line_tax(1, 5000) == 1  # 0.5 -> 1
    assert line_tax(1, 4999) == 0  # 0.4999 -> 0
    assert line_tax(3, 5000) == 2  # 1.5 -> 2
    assert line_tax(5, 1000) == 1  # 0.5 -> 1
    assert line_tax(4, 1000) == 0  # 0.4 -> 0
    assert line_tax(999, 1900) == 190  # 189.81 -> 190
    assert line_tax(0, 1900) == 0
    assert round_half_up(7, 2) == 4 and round_half_up(5, 2) == 3 and round_half_up(1, 3) == 0
    with pytest.raises(ValueError):
        round_half_up(-1, 2)


def test_lookup_falls_back_from_region_and_class_to_any() -> None:
    table = RateTable(
        {
            ("DE", "standard"): 1900,
            ("DE", "*"): 1600,
            ("*", "reduced"): 500,
            ("*", "*"): 2000,
        }
    )
    assert table.rate("DE", "standard") == ("DE-standard-1900", 1900)
    assert table.rate("DE", "reduced") == ("DE-any-1600", 1600)  # region before class
    assert table.rate("FR", "reduced") == ("any-reduced-500", 500)
    assert table.rate("FR", "standard") == ("any-any-2000", 2000)
    assert table.rate(None, "reduced") == ("any-reduced-500", 500)
    assert RateTable({("DE", "standard"): 1900}).rate("FR", "standard") == ("none", 0)


def test_each_line_is_taxed_and_rounded_on_its_own() -> None:
    table = RateTable({("*", "standard"): 1900, ("*", "reduced"): 700, ("*", "exempt"): 0})
    lines = [
        TaxLine("A", "standard", 3, 999),
        TaxLine("B", "reduced", 1, 5),
        TaxLine("C", "exempt", 10, 10_000),
        TaxLine("D", "standard", 1, 3),
    ]
    taxes = asyncio.run(table.calculate("EUR", "DE", lines))
    assert [t.tax_minor for t in taxes] == [190, 0, 0, 1]  # 189.81, 0.35, 0, 0.57
    assert [t.rate_bp for t in taxes] == [1900, 700, 0, 1900]
    assert taxes[0].code == "any-standard-1900"
    # Rounded per line, not on the sum: 0.57 + 0.57 rounds to 2 as two lines.
    two = asyncio.run(table.calculate("EUR", "DE", [TaxLine("D", "standard", 1, 3)] * 2))
    assert sum(t.tax_minor for t in two) == 2


def test_the_default_table_taxes_standard_goods_and_spares_exempt_ones() -> None:
    table = RateTable()
    assert table.rates == DEFAULT_RATES
    assert table.rate("ANY-REGION", "standard")[1] == 2000
    assert table.rate("ANY-REGION", "reduced")[1] == 500
    assert table.rate("ANY-REGION", "exempt")[1] == 0
    assert table.rate("ANY-REGION", "unheard-of")[1] == 2000


def test_the_table_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_rates("DE/standard=1900, */*=0") == {("DE", "standard"): 1900, ("*", "*"): 0}
    for bad in ("DE=1900", "DE/standard=19%", "/standard=1", "DE/standard"):
        with pytest.raises(ValueError):
            parse_rates(bad)
    with pytest.raises(ValueError):
        RateTable({("*", "*"): 100_001})
    monkeypatch.setenv(RATES_ENV, "EU/standard=2100,*/*=0")
    assert rate_table_from_env().rates == {("EU", "standard"): 2100, ("*", "*"): 0}
    monkeypatch.delenv(RATES_ENV)
    assert rate_table_from_env().rates == DEFAULT_RATES
