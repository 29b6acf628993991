from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from tally.launcher import launch
from tests.support.platform import PlatformClient, free_ports
from tests.support.servers import create_database, postgres_server, redis_server
from tests.support.tokens import TestIssuer

_db_names = itertools.count(1)


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
