"""The circuit breaker per downstream (decision 0025): the state machine on a fake
clock, then a real httpx client against a port nobody listens on, a real server that
comes up there, and a real service's /metrics."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast

import httpx
import msgspec
import pytest
from litestar.testing import TestClient

from shared.auth.service_tokens import ServiceTokens
from shared.breaker import CircuitBreaker, CircuitOpen, State
from shared.http import Downstream
from shared.problems import ProblemError
from shared.settings import load_settings
from tests.support.ports import free_port
from tests.support.stack import build_service_app
from tests.support.tokens import TestIssuer


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def state(b: CircuitBreaker | None) -> State:
    """Read afresh each time (the cool-down may have passed since the last look)."""
    assert b is not None
    return b.state


def breaker(clock: FakeClock, failures: int = 3, cooldown: float = 5.0) -> CircuitBreaker:
    return CircuitBreaker(f"unit-{id(clock)}", failures=failures, cooldown=cooldown, clock=clock)


def test_opens_after_consecutive_failures_only(clock: FakeClock) -> None:
    b = breaker(clock)
    for _ in range(2):
        b.admit()
        b.failed()
    b.admit()
    b.succeeded()  # a success in between starts the count again
    for _ in range(2):
        b.admit()
        b.failed()
    assert state(b) is State.CLOSED
    b.admit()
    b.failed()
    assert state(b) is State.OPEN
    with pytest.raises(CircuitOpen) as refused:
        b.admit()
    assert refused.value.retry_after == 5.0
    assert b.retry_after() == 5


def test_half_open_lets_one_probe_through_after_the_cooldown(clock: FakeClock) -> None:
    b = breaker(clock, failures=1)
    b.admit()
    b.failed()
    clock.now += 4.9
    with pytest.raises(CircuitOpen):
        b.admit()
    clock.now += 0.1
    assert state(b) is State.HALF_OPEN
    b.admit()  # the probe
    with pytest.raises(CircuitOpen):
        b.admit()  # a second caller while the probe is out
    b.succeeded()
    assert state(b) is State.CLOSED
    b.admit()


async def test_calls_made_while_the_probe_is_out_wait_for_it(clock: FakeClock) -> None:
    """Right after an outage a service's concurrent calls (a list of orders read at
    once) met a half-open circuit: the first was the probe and the others were refused
    503 at once. Now they wait for the probe, and go through once it closes the circuit;
    a failed probe refuses them; an abandoned one hands the probe to one of them."""
    b = breaker(clock, failures=1)
    b.admit()
    b.failed()
    clock.now += 5
    b.admit()  # the probe
    waiting = [asyncio.create_task(b.admitted()) for _ in range(3)]
    await asyncio.sleep(0.01)
    assert not any(task.done() for task in waiting)
    b.succeeded()
    await asyncio.gather(*waiting)  # all admitted, none refused
    assert state(b) is State.CLOSED

    b.admit()
    b.failed()
    clock.now += 5
    b.admit()  # the next probe
    refused = [asyncio.create_task(b.admitted()) for _ in range(2)]
    await asyncio.sleep(0.01)
    b.failed()
    outcomes = await asyncio.gather(*refused, return_exceptions=True)
    assert all(isinstance(outcome, CircuitOpen) for outcome in outcomes)
    assert state(b) is State.OPEN

    clock.now += 5
    b.admit()  # a probe whose caller gives up (cancelled)
    first, second = asyncio.create_task(b.admitted()), asyncio.create_task(b.admitted())
    await asyncio.sleep(0.01)
    b.abandoned()
    await asyncio.sleep(0.01)
    # One of them is the new probe; the other waits for it.
    assert [first.done(), second.done()].count(True) == 1
    b.succeeded()
    await asyncio.gather(first, second)
    assert state(b) is State.CLOSED


def test_a_failed_probe_opens_for_another_full_cooldown(clock: FakeClock) -> None:
    b = breaker(clock, failures=3)
    for _ in range(3):
        b.admit()
        b.failed()
    clock.now += 5
    b.admit()
    b.failed()  # one failure is enough in half-open
    assert state(b) is State.OPEN
    clock.now += 4.9
    with pytest.raises(CircuitOpen):
        b.admit()
    clock.now += 0.1
    b.admit()


def test_an_abandoned_probe_gives_its_slot_back(clock: FakeClock) -> None:
    b = breaker(clock, failures=1)
    b.admit()
    b.failed()
    clock.now += 5
    b.admit()
    b.abandoned()  # cancelled: neither a success nor a failure
    assert state(b) is State.HALF_OPEN
    b.admit()


def test_settings_refuse_a_breaker_that_cannot_work(clock: FakeClock) -> None:
    with pytest.raises(ValueError):
        CircuitBreaker("x", failures=0, clock=clock)
    with pytest.raises(ValueError):
        CircuitBreaker("x", cooldown=0, clock=clock)


class CountingTransport(httpx.AsyncBaseTransport):
    """The real transport, counting connection attempts (every request it is given)."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.attempts = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.attempts += 1
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


class Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def later_server(port: int) -> Iterator[Any]:
    """Starts a small HTTP server on ``port`` when called; stopped at the end."""
    started: list[ThreadingHTTPServer] = []

    def start() -> None:
        server = ThreadingHTTPServer(("127.0.0.1", port), Hello)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)

    yield start
    for server in started:
        server.shutdown()
        server.server_close()


async def test_real_client_opens_fails_fast_half_opens_and_closes(
    port: int, later_server: Any
) -> None:
    transport = CountingTransport()
    cooldown = 1.5  # longer than a retry's wait (at most ~1.05 s for the first)
    async with httpx.AsyncClient(transport=transport, timeout=2.0) as client:
        erp = Downstream(
            "breaker-test",
            f"http://127.0.0.1:{port}",
            client,
            cast(ServiceTokens, None),
            attempts=2,
            breaker=CircuitBreaker("breaker-test", failures=3, cooldown=cooldown),
        )

        async def get() -> httpx.Response:
            return await erp.request("GET", "/ping", bearer="token")

        # Two attempts (a retry) refused, then one more: the third failure opens it,
        # and the retry of that second call is not made.
        for _ in range(2):
            with pytest.raises(ProblemError) as unavailable:
                await get()
            assert unavailable.value.status_code == 503
        assert transport.attempts == 3
        assert erp.breaker is not None and erp.breaker.state is State.OPEN

        for _ in range(20):
            with pytest.raises(ProblemError) as refused:
                await get()
            assert refused.value.status_code == 503
        # Failing fast: no connection attempted while open (not a timing, which a
        # loaded machine makes flaky).
        assert transport.attempts == 3
        assert refused.value.headers is not None
        assert refused.value.headers["Retry-After"] in ("1", "2")

        later_server()
        await asyncio.sleep(cooldown + 0.05)
        assert state(erp.breaker) is State.HALF_OPEN
        response = await get()
        assert response.status_code == 200
        assert state(erp.breaker) is State.CLOSED
        assert transport.attempts == 4


def metric(text: str, name: str, downstream: str) -> float | None:
    prefix = f'{name}{{downstream="{downstream}"}} '
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix) :])
    return None


def test_state_and_refusals_show_in_a_services_metrics(tmp_path: Path) -> None:
    settings = load_settings("availability", data_dir=tmp_path)
    closed = {name: f"http://127.0.0.1:{free_port()}" for name in ("erp", "wms")}
    settings = msgspec.structs.replace(
        settings,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'availability.db'}",
        bus_url=f"sqlite:///{tmp_path / 'events.db'}",
        service_urls={**settings.service_urls, **closed},
        breaker_failures=2,
        breaker_cooldown_seconds=60.0,
    )
    issuer = TestIssuer()
    app = build_service_app("availability", settings, issuer)
    with TestClient(app) as client:
        client.headers["Authorization"] = "Bearer " + issuer.token(
            "inventory:admin", audience="availability"
        )
        before = metric(client.get("/metrics").text, "tally_circuit_rejected_total", "erp") or 0
        for _ in range(3):
            answer = client.post("/availability/v1/reconciliation/runs", json={})
            assert answer.status_code == 503, answer.text
            assert answer.headers["content-type"].startswith("application/problem+json")
            assert answer.json()["type"] == "/problems/downstream-unavailable"
            assert "Retry-After" in answer.headers
        text = client.get("/metrics").text
    assert metric(text, "tally_circuit_state", "erp") == 2.0
    rejected = metric(text, "tally_circuit_rejected_total", "erp")
    assert rejected is not None and rejected > before


async def test_gateway_errors_count_as_failures_other_answers_as_successes() -> None:
    statuses = iter([503, 502, 404, 504, 504, 504])
    calls: list[int] = []

    def answer(_: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(next(statuses))

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        wms = Downstream(
            "status-test",
            "http://wms.invalid",
            client,
            cast(ServiceTokens, None),
            attempts=1,
            breaker=CircuitBreaker("status-test", failures=3, cooldown=60),
        )
        results: list[int] = []
        for _ in range(7):
            try:
                results.append((await wms.request("GET", "/x", bearer="t")).status_code)
            except ProblemError as exc:
                results.append(exc.status_code)
    # 503, 502 fail; 404 is an answer (the count starts again); three 504s open it.
    assert results == [503, 503, 404, 503, 503, 503, 503]
    assert len(calls) == 6
    assert wms.breaker is not None and wms.breaker.state is State.OPEN


async def test_a_transaction_that_lost_a_lock_conflict_is_an_answer_not_an_outage() -> None:
    """A 503 ``transaction-conflict`` (a deadlock victim on PostgreSQL: nothing written,
    send it again) comes from a service that is up: it must not open the circuit and
    turn every call away for the cool-down. A plain 503 still counts."""
    conflict = {
        "type": "/problems/transaction-conflict",
        "title": "Service Unavailable",
        "status": 503,
        "detail": "Another transaction held what this request needed; nothing was changed.",
    }
    problem = {"content-type": "application/problem+json"}
    answers = [httpx.Response(503, json=conflict, headers=problem) for _ in range(5)]
    answers += [httpx.Response(503) for _ in range(3)]
    replies = iter(answers)

    async with httpx.AsyncClient(transport=httpx.MockTransport(lambda _: next(replies))) as client:
        availability = Downstream(
            "conflict-test",
            "http://availability.invalid",
            client,
            cast(ServiceTokens, None),
            attempts=1,
            breaker=CircuitBreaker("conflict-test", failures=3, cooldown=60),
        )
        breaker = availability.breaker
        assert breaker is not None
        for _ in range(5):
            with pytest.raises(ProblemError):
                await availability.request("POST", "/x", bearer="t")
        assert breaker.state is State.CLOSED
        for _ in range(3):
            with pytest.raises(ProblemError):
                await availability.request("POST", "/x", bearer="t")
        assert breaker.state is State.OPEN
