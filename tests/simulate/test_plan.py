"""The day's plan: reproducible from its seed, and shaped by the mix options."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from tally.cli import app
from tally.simulate.plan import mix_from, plan_day


def test_the_same_seed_plays_the_same_day_and_another_seed_another() -> None:
    first, again = plan_day(5, 600, "T"), plan_day(5, 600, "T")
    assert first == again
    assert plan_day(6, 600, "T").intents != first.intents
    assert first.lines == 600


def test_the_mix_changes_what_the_day_holds() -> None:
    plain = plan_day(3, 3000, "T")
    mixed = plan_day(
        3, 3000, "T", mix_from(["returns=0.5", "channel.edi=1", "channel.webshop=0", "carts=0"])
    )
    assert sum(i.returns for i in mixed.intents) > 3 * sum(i.returns for i in plain.intents)
    channels = {i.channel for i in mixed.intents}
    assert "webshop" not in channels and "edi" in channels
    assert not any(i.via_cart for i in mixed.intents)
    edi_share = sum(i.channel == "edi" for i in mixed.intents) / len(mixed.intents)
    assert edi_share > sum(i.channel == "edi" for i in plain.intents) / len(plain.intents)


@pytest.mark.parametrize(
    ("override", "complaint"),
    [
        ("returns", "NAME=VALUE"),
        ("returns=1.5", "between 0 and 1"),
        ("refunds=0.1", "not part of the mix"),
        ("channel.fax=0.1", "not part of the mix"),
        ("returns=lots", "could not convert"),
    ],
)
def test_a_wrong_mix_is_refused_with_what_is_wrong(override: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        mix_from([override])
    result = CliRunner().invoke(app, ["simulate", "--mix", override])
    assert result.exit_code == 2
    assert "--mix" in result.output
