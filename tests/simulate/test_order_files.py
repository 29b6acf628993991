"""The partners' order files the simulated channels send: every order of the day is
placed once, one by one or in exactly one file; a file is one marketplace or EDI
customer's orders in the day's order, never a cart's."""

from __future__ import annotations

from tally.simulate.actors.channels import FILE_CHANNELS, FILE_ORDERS, files_of
from tally.simulate.plan import plan_day


def test_every_order_goes_once_and_a_file_is_one_partners_orders_in_day_order() -> None:
    day = plan_day(7, 6000, "T")
    singles, files = files_of(day.intents)
    placed = [i.index for i in singles] + [i.index for file in files for i in file]
    assert sorted(placed) == [i.index for i in sorted(day.intents, key=lambda i: i.index)]
    assert files, "a day of 6,000 lines has partner orders"
    for file in files:
        assert 1 <= len(file) <= FILE_ORDERS
        assert len({i.customer_id for i in file}) == 1
        assert {i.channel for i in file} <= set(FILE_CHANNELS)
        assert not any(i.via_cart for i in file)
        assert [i.at for i in file] == sorted(i.at for i in file)
    assert all(i.channel not in FILE_CHANNELS or i.via_cart for i in singles)
    # Files fill up before a partner starts another: only each partner's last is short.
    short = [file for file in files if len(file) < FILE_ORDERS]
    assert len({file[0].customer_id for file in short}) == len(short)
