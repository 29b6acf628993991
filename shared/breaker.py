"""A circuit breaker per downstream service (decision 0025).

Closed: calls pass; ``failures`` consecutive failures open it. Open: calls are refused
at once (no connection attempt) for ``cooldown`` seconds. Half-open: one call, the
probe, passes; its success closes the circuit, its failure opens it for another
cool-down. Calls made while the probe is out wait for its outcome (``admitted``, at
most a cool-down): a burst of calls right after an outage goes through once the probe
has closed the circuit, instead of all but one being refused. State and refusals are
exported to /metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable
from enum import IntEnum

from prometheus_client import Counter, Gauge

CIRCUIT_STATE = Gauge(
    "tally_circuit_state",
    "Circuit breaker state per downstream (0 closed, 1 half-open, 2 open)",
    ["downstream"],
    multiprocess_mode="livemax",
)
CIRCUIT_REJECTED = Counter(
    "tally_circuit_rejected_total",
    "Calls refused without a network call because the downstream's circuit was open",
    ["downstream"],
)


class State(IntEnum):
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class CircuitOpen(Exception):
    def __init__(self, name: str, retry_after: float) -> None:
        super().__init__(f"the circuit to {name} is open")
        self.retry_after = retry_after


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        *,
        failures: int = 5,
        cooldown: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failures < 1 or cooldown <= 0:
            raise ValueError("a circuit breaker needs failures >= 1 and cooldown > 0")
        self.name = name
        self.failures = failures
        self.cooldown = cooldown
        self.clock = clock
        self._state = State.CLOSED
        self._consecutive = 0
        self._opened_at = 0.0
        self._probing = False
        self._probe_settled: asyncio.Event | None = None
        CIRCUIT_STATE.labels(name).set(State.CLOSED)

    @property
    def state(self) -> State:
        if self._state is State.OPEN and self.clock() >= self._opened_at + self.cooldown:
            self._set(State.HALF_OPEN)
        return self._state

    def admit(self) -> None:
        """Lets one call through, or raises CircuitOpen. In half-open, only the probe
        passes; whoever is admitted must report ``succeeded``, ``failed`` or ``abandoned``."""
        state = self.state
        if state is State.CLOSED:
            return
        if state is State.HALF_OPEN and not self._probing:
            self._probing = True
            self._probe_settled = None
            return
        CIRCUIT_REJECTED.labels(self.name).inc()
        remaining = self._opened_at + self.cooldown - self.clock()
        raise CircuitOpen(self.name, max(remaining, 0.0))

    async def admitted(self) -> None:
        """``admit``, except that a call made while the probe is out waits for the
        probe's outcome (at most a cool-down) and is then admitted or refused by it."""
        if self._probing and self._state is State.HALF_OPEN:
            deadline = self.clock() + self.cooldown
            while self._probing and (left := deadline - self.clock()) > 0:
                if self._probe_settled is None:
                    self._probe_settled = asyncio.Event()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._probe_settled.wait(), left)
        self.admit()

    def _settle_probe(self) -> None:
        self._probing = False
        if self._probe_settled is not None:
            self._probe_settled.set()
            self._probe_settled = None

    def succeeded(self) -> None:
        self._settle_probe()
        self._consecutive = 0
        if self._state is not State.CLOSED:
            self._set(State.CLOSED)

    def failed(self) -> None:
        self._settle_probe()
        self._consecutive += 1
        if self._state is State.HALF_OPEN or self._consecutive >= self.failures:
            self._opened_at = self.clock()
            self._set(State.OPEN)

    def abandoned(self) -> None:
        """The admitted call ended without an answer either way (cancelled): a probe
        slot goes back, the counts stay."""
        self._settle_probe()

    def retry_after(self) -> int:
        """Whole seconds a caller should wait: the rest of the cool-down, at least 1."""
        remaining = self._opened_at + self.cooldown - self.clock()
        return max(1, math.ceil(remaining)) if self._state is State.OPEN else 1

    def _set(self, state: State) -> None:
        self._state = state
        CIRCUIT_STATE.labels(self.name).set(state)


class Breakers:
    """One breaker per downstream name (a service's runtime holds one of these)."""

    def __init__(self, *, failures: int = 5, cooldown: float = 5.0) -> None:
        self.failures = failures
        self.cooldown = cooldown
        self._by_name: dict[str, CircuitBreaker] = {}

    def get(self, name: str) -> CircuitBreaker:
        breaker = self._by_name.get(name)
        if breaker is None:
            breaker = CircuitBreaker(name, failures=self.failures, cooldown=self.cooldown)
            self._by_name[name] = breaker
        return breaker
