from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from tally.launcher import launch
from tests.support.platform import PlatformClient
from tests.support.ports import free_ports
from tests.support.servers import create_database, postgres_server, redis_server
from tests.support.tokens import TestIssuer

_db_names = itertools.count(1)

# Fixtures that start services on real ports: the whole platform as processes (e2e), or a
# stack of services in threads (slow). Tests that start processes themselves carry the
# ``slow`` mark in their module.
_E2E_FIXTURES = {"platform"}
_SLOW_FIXTURES = {"stack", "full_stack"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "slow: starts services as processes or a stack of services on real ports "
        "(left out of `make test-fast`)",
    )


# The longest files (minutes each on two cores) go first: `make test` hands whole files
# to its workers in collection order (--dist loadfile --no-loadscope-reorder; xdist's
# default order, most tests first, put the simulated days last), and one of these
# started last would run alone at the end while the other worker idles.
_LONGEST_FIRST = (
    "tests/contract/test_schemathesis.py",
    "tests/simulate/test_chaos_day.py",
    "tests/simulate/test_simulated_day.py",
    "tests/contract/test_schemathesis_graphql.py",
    "tests/erp/test_money_machine.py",
)


def _longest_first(item: pytest.Item) -> int:
    path = item.nodeid.split("::", 1)[0]
    return _LONGEST_FIRST.index(path) if path in _LONGEST_FIRST else len(_LONGEST_FIRST)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=_longest_first)  # stable: every other test keeps its place
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        if used & _E2E_FIXTURES:
            item.add_marker(pytest.mark.e2e)
        elif used & _SLOW_FIXTURES:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def issuer() -> TestIssuer:
    return TestIssuer()


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture
def postgres_url(postgres_cluster: str) -> str:
    """A fresh database per test on the session's real PostgreSQL server."""
    return create_database(postgres_cluster, f"t{next(_db_names)}")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A service's database on each engine in turn: a SQLite file, then a fresh
    database on the session's real PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'service.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformClient]:
    """Every service as a real process (the code path of `tally up`) on free ports."""
    launched = launch(tmp_path_factory.mktemp("platform"), ports=free_ports())
    try:
        yield PlatformClient(launched)
    finally:
        launched.platform.stop()
