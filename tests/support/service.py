"""One service in process under Litestar's TestClient, on SQLite and on PostgreSQL.

A folder that tests one service declares its fixtures in one line of its conftest:

    _embedded_defaults, settings, client = service_fixtures("wms", "wms:read wms:write")

- ``_embedded_defaults`` (autouse) clears the database and bus URLs the shell may
  export, so the tests run on the zero-setup defaults;
- ``settings`` is parametrized over ``DATABASES``: the embedded SQLite default and a
  fresh database on the session's real PostgreSQL (marked ``postgres``); the event log
  stays the embedded one under ``tmp_path`` either way;
- ``client`` serves the app built by the service's ``create_app`` with the session's
  test issuer and sends a bearer token with ``scopes`` for the service's audience.

``stack_fixtures`` does the same for folders that run several services on real ports.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

from shared.settings import Settings, load_settings
from shared.topology import BY_NAME
from tests.support.stack import Stack, app_factory
from tests.support.tokens import TestIssuer

DATABASES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def service_settings(service: str, request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """The service's settings under ``tmp_path`` on the database ``request.param`` names."""
    settings = load_settings(service, data_dir=tmp_path)
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
        settings = msgspec.structs.replace(settings, database_url=url)
    return settings


@contextmanager
def service_client(
    service: str, settings: Settings, issuer: TestIssuer, scopes: str
) -> Iterator[TestClient[Any]]:
    factory = app_factory(service)
    if factory is None:
        raise LookupError(f"{service} has no create_app")
    app = factory(settings, key_source=issuer.key_source())
    audience = BY_NAME[service].api or service
    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {issuer.token(scopes, audience=audience)}"
        yield client


def service_fixtures(service: str, scopes: str) -> tuple[Any, Any, Any]:
    """``(_embedded_defaults, settings, client)`` fixtures of ``service`` (see above)."""
    exported = ("TALLY_DATABASE_URL", f"TALLY_{service.upper()}_DATABASE_URL", "TALLY_BUS_URL")

    @pytest.fixture(autouse=True)
    def _embedded_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
        for name in exported:
            monkeypatch.delenv(name, raising=False)

    @pytest.fixture(params=DATABASES)
    def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
        return service_settings(service, request, tmp_path)

    @pytest.fixture
    def client(settings: Settings, issuer: TestIssuer) -> Iterator[TestClient[Any]]:
        with service_client(service, settings, issuer, scopes) as test_client:
            yield test_client

    return _embedded_defaults, settings, client


def post(client: TestClient[Any], path: str, body: dict[str, Any], *, key: str) -> Any:
    """A create with its Idempotency-Key."""
    return client.post(path, json=body, headers={"Idempotency-Key": key})


def stack_fixtures(
    name: str, services: list[str], options: dict[str, dict[str, Any]] | None = None
) -> tuple[Any, Any]:
    """``(stack, full_stack)``: ``services`` started once per package on free ports, and
    the stack for tests that need the WMS and availability (a missing one fails, never
    skips)."""

    @pytest.fixture(scope="package")
    def stack(tmp_path_factory: pytest.TempPathFactory, issuer: TestIssuer) -> Iterator[Stack]:
        data_dir = tmp_path_factory.mktemp(f"{name}-stack")
        with Stack(data_dir, issuer, services, options=options) as running:
            yield running

    @pytest.fixture
    def full_stack(stack: Stack) -> Stack:
        missing = [service for service in ("wms", "availability") if not stack.has(service)]
        if missing:
            pytest.fail(f"services not importable: {', '.join(missing)}")
        return stack

    return stack, full_stack
