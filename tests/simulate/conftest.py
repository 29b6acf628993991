"""The stacks a simulated day runs on: the embedded default, and PostgreSQL + Redis
(the five business databases on PostgreSQL, the event bus and the gateway's rate
limits on Redis)."""

from __future__ import annotations

import itertools

import pytest

from tests.support.servers import create_database

_names = itertools.count()
BUSINESS = ("erp", "wms", "availability", "order_to_ship", "billing")


@pytest.fixture(scope="module", params=["embedded", "postgres_redis"])
def stack_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """The platform's environment (the simulator gets it too, as an operator's shell)."""
    if request.param == "embedded":
        return {}
    cluster: str = request.getfixturevalue("postgres_cluster")
    redis_url: str = request.getfixturevalue("redis_url")
    env = {"TALLY_BUS_URL": redis_url, "TALLY_REDIS_URL": redis_url}
    for service in BUSINESS:
        name = f"simday_{service}_{next(_names)}"
        env[f"TALLY_{service.upper()}_DATABASE_URL"] = create_database(cluster, name)
    return env
