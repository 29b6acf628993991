"""Rate limits per client by tier: in-process, in a real Redis shared by two gateways,
and with that Redis stopped (fail-open to in-process limits, docs/decisions/0013).

The binding window here is the per-minute one (5 calls: one more every 12 s), so the
expected count allows for one extra call per 12 s the test itself took."""

from __future__ import annotations

import contextlib
import itertools
import time
from pathlib import Path

import httpx
import pytest
import redis

from tests.gateway.helpers import Gateway, gateway_with
from tests.gateway.upstreams import Upstream
from tests.support.problems import assert_problem
from tests.support.servers import redis_server

PER_MINUTE = 5
LIMITS = {"bronze": (1000, PER_MINUTE), "silver": (1000, 50), "gold": (1000, 500)}


def _budget(started: float) -> int:
    """What the limit allows since ``started``: the burst plus what accrued."""
    return PER_MINUTE + int((time.monotonic() - started) // (60 / PER_MINUTE))


def _calls(gateways: list[Gateway], token: str, count: int, **headers: str) -> list[httpx.Response]:
    clients = [gw.client(Authorization=f"Bearer {token}", **headers) for gw in gateways]
    try:
        cycle = itertools.cycle(clients)
        return [next(cycle).get("/erp/v1/items") for _ in range(count)]
    finally:
        for client in clients:
            client.close()


def test_in_process_limit_headers_and_429(tmp_path: Path, upstream: tuple[Upstream, str]) -> None:
    service, url = upstream
    with gateway_with(tmp_path, url, rate_limits=LIMITS) as gateway:
        _, token = gateway.new_client("erp:read", tier="bronze")
        before = len(service.calls)
        started = time.monotonic()
        responses = _calls([gateway], token, PER_MINUTE + 3)
        budget = _budget(started)
    allowed = [r for r in responses if r.status_code == 200]
    assert PER_MINUTE <= len(allowed) <= budget
    assert len(service.calls) - before == len(allowed)  # refused calls never reach it
    first = responses[0]
    assert first.headers["ratelimit-limit"] == str(PER_MINUTE)
    assert first.headers["ratelimit-remaining"] == str(PER_MINUTE - 1)
    assert int(first.headers["ratelimit-reset"]) > 0
    assert first.headers["ratelimit-policy"] == f"1000;w=1, {PER_MINUTE};w=60"
    remaining = [int(r.headers["ratelimit-remaining"]) for r in responses[:PER_MINUTE]]
    assert remaining == sorted(remaining, reverse=True)
    refused = responses[-1]
    assert_problem(refused, 429, "rate-limited")
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["ratelimit-remaining"] == "0"


def test_forged_forwarded_for_does_not_dodge_the_limit(
    tmp_path: Path, upstream: tuple[Upstream, str]
) -> None:
    service, url = upstream
    with gateway_with(tmp_path, url, rate_limits=LIMITS) as gateway:
        _, token = gateway.new_client("erp:read")
        clients = [
            gateway.client(Authorization=f"Bearer {token}", **{"X-Forwarded-For": f"10.0.0.{n}"})
            for n in range(PER_MINUTE + 3)
        ]
        before = len(service.calls)
        started = time.monotonic()
        statuses = [client.get("/erp/v1/items").status_code for client in clients]
        budget = _budget(started)
        for client in clients:
            client.close()
    assert statuses.count(429) >= PER_MINUTE + 3 - budget > 0
    assert len(service.calls) - before == statuses.count(200)


def test_each_client_has_its_own_budget_and_internal_is_unlimited(
    tmp_path: Path, upstream: tuple[Upstream, str]
) -> None:
    _, url = upstream
    with gateway_with(tmp_path, url, rate_limits=LIMITS) as gateway:
        _, first = gateway.new_client("erp:read")
        _, second = gateway.new_client("erp:read")
        _, internal = gateway.new_client("erp:read", tier="internal")
        _, gold = gateway.new_client("erp:read", tier="gold")
        started = time.monotonic()
        exhausted = _calls([gateway], first, PER_MINUTE + 2)
        budget = _budget(started)
        other = _calls([gateway], second, 1)[0]
        unlimited = _calls([gateway], internal, PER_MINUTE + 5)
        bigger = _calls([gateway], gold, 1)[0]
    assert [r.status_code for r in exhausted].count(429) >= PER_MINUTE + 2 - budget > 0
    assert other.status_code == 200
    assert all(r.status_code == 200 for r in unlimited)
    assert "ratelimit-limit" not in unlimited[0].headers
    assert bigger.headers["ratelimit-limit"] == "500"


@pytest.mark.redis
def test_two_gateways_sharing_redis_stay_within_the_limit(
    tmp_path: Path, upstream: tuple[Upstream, str], redis_url: str
) -> None:
    service, url = upstream
    with (
        gateway_with(tmp_path, url, rate_limits=LIMITS, redis_url=redis_url) as one,
        gateway_with(tmp_path, url, rate_limits=LIMITS, redis_url=redis_url) as two,
    ):
        _, token = one.new_client("erp:read")
        before = len(service.calls)
        started = time.monotonic()
        responses = _calls([one, two], token, 2 * PER_MINUTE + 2)
        budget = _budget(started)
    allowed = [r for r in responses if r.status_code == 200]
    assert PER_MINUTE <= len(allowed) <= budget  # not PER_MINUTE per gateway
    assert len(service.calls) - before == len(allowed)
    assert {r.status_code for r in responses} == {200, 429}
    assert responses[1].headers["ratelimit-remaining"] == str(PER_MINUTE - 2)  # one count


@pytest.mark.redis
def test_redis_down_fails_open_to_in_process_limits(
    tmp_path: Path, upstream: tuple[Upstream, str]
) -> None:
    _, url = upstream
    with contextlib.ExitStack() as stack:
        with redis_server() as redis_url:
            gateway = stack.enter_context(
                gateway_with(tmp_path, url, rate_limits=LIMITS, redis_url=redis_url)
            )
            client_id, token = gateway.new_client("erp:read")
            assert _calls([gateway], token, 1)[0].status_code == 200
            stored = redis.Redis.from_url(redis_url).hgetall(f"tally:ratelimit:{client_id}")
            assert len(stored) == 2  # both windows live in Redis while it is up
        # Redis is stopped; the gateway still runs.
        started = time.monotonic()
        responses = _calls([gateway], token, PER_MINUTE + 2)
        budget = _budget(started)
    statuses = [r.status_code for r in responses]
    assert statuses[0] == 200  # open: calls still pass...
    assert "ratelimit-remaining" in responses[0].headers
    assert statuses.count(429) >= PER_MINUTE + 2 - budget > 0  # ...within this replica's limit
    assert_problem(responses[-1], 429, "rate-limited")
