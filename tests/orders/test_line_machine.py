"""The line quantities under any sequence of operations (Hypothesis state machine,
returns recounted included):
an operation either keeps every invariant or is refused and changes nothing, and the
status the lines give is always one the transition table can reach."""

from __future__ import annotations

import copy

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from process_apis.order_to_ship.lifecycle.lines import LineQuantities, QuantityRefused
from process_apis.order_to_ship.lifecycle.states import (
    TRANSITIONS,
    allowed,
    operational_status,
)

quantities = st.integers(min_value=-2, max_value=12)
OPERATIONS = (
    "fill",
    "release",
    "pick",
    "put_away",
    "ship",
    "deliver",
    "invoice",
    "cancel_backordered",
    "cancel_unreleased",
)


class LineMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.lines = [LineQuantities("A", 10), LineQuantities("B", 4)]
        self.accepted = False
        self.status = "pending"

    @rule(a=st.integers(0, 10), b=st.integers(0, 4))
    def plan(self, a: int, b: int) -> None:
        if self.accepted:
            return
        self.lines[0].plan(a, 10 - a)
        self.lines[1].plan(b, 4 - b)
        self.accepted = True
        self._moved()

    @precondition(lambda self: self.accepted)
    @rule(
        line=st.integers(0, 1),
        operation=st.sampled_from(OPERATIONS),
        quantity=quantities,
    )
    def operate(self, line: int, operation: str, quantity: int) -> None:
        target = self.lines[line]
        before = copy.copy(target)
        try:
            getattr(target, operation)(quantity)
        except QuantityRefused:
            assert target == before, f"{operation}({quantity}) was refused but changed the line"
            return
        assert quantity > 0
        self._moved()

    @precondition(lambda self: self.accepted)
    @rule(line=st.integers(0, 1), quantity=quantities, backorder=st.booleans())
    def withdraw(self, line: int, quantity: int, backorder: bool) -> None:
        target = self.lines[line]
        before = copy.copy(target)
        try:
            target.withdraw(quantity, backorder=backorder)
        except QuantityRefused:
            assert target == before
            return
        self._moved()

    @precondition(lambda self: self.accepted)
    @rule(line=st.integers(0, 1), quantity=quantities)
    def recount_returned(self, line: int, quantity: int) -> None:
        """The order's RMAs recounted: never above what shipped."""
        target = self.lines[line]
        before = copy.copy(target)
        try:
            target.count_returned(quantity)
        except QuantityRefused:
            assert target == before
            return
        assert 0 <= quantity <= target.shipped
        self._moved()

    def _moved(self) -> None:
        after = operational_status(self.lines)
        if after != self.status:
            assert allowed(self.status, after), f"{self.status} -> {after} is not in the table"
            self.status = after

    @invariant()
    def invariants_hold(self) -> None:
        for line in self.lines:
            assert line.violations() == []
            assert line.picked + line.shipped <= line.released <= line.allocated
            assert line.shipped <= line.ordered - line.cancelled
            assert line.delivered <= line.shipped and line.invoiced <= line.shipped
            assert line.returned <= line.shipped
            if self.accepted:
                assert line.allocated + line.backordered + line.cancelled == line.ordered

    @invariant()
    def status_is_known(self) -> None:
        assert self.status in TRANSITIONS


LineMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)
TestLineQuantities = LineMachine.TestCase
