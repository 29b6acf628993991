"""Fixtures of the fault tests: every test runs on both bus engines.

- ``sqlite``: the embedded log, a file in the test's tmp dir;
- ``redis``: a database of the session's real Redis server, flushed before use.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from tests.faults.procs import JwksServer
from tests.support.tokens import TestIssuer

# Database 0 is left to the other suites; each bus of a fault test takes the next one.
_redis_dbs = itertools.cycle(range(1, 16))


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def new_bus_url(engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> Callable[[], str]:
    """Returns a maker of fresh, empty bus URLs on the test's engine."""
    made: list[str] = []

    def make() -> str:
        if engine == "sqlite":
            url = f"sqlite:///{tmp_path / f'events-{len(made)}.db'}"
        else:
            server = str(request.getfixturevalue("redis_url")).rsplit("/", 1)[0]
            url = f"{server}/{next(_redis_dbs)}"
            client = redis.Redis.from_url(url)
            try:
                client.flushdb()
            finally:
                client.close()
        made.append(url)
        return url

    return make


@pytest.fixture
def bus_url(new_bus_url: Callable[[], str]) -> str:
    return new_bus_url()


@pytest.fixture
def jwks(issuer: TestIssuer) -> Iterator[JwksServer]:
    with JwksServer(issuer) as server:
        yield server
