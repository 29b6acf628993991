from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.app import create_app
from gateway.clients.registry import ClientRegistry
from gateway.routing import forwarder as forwarder_module
from shared.settings import Settings
from tests.gateway.helpers import gateway_settings, serve
from tests.gateway.upstreams import Upstream
from tests.support.tls import TLS


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[Upstream, str]]:
    service = Upstream()
    with serve(service.app) as url:
        yield service, url


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gateway-data")


@pytest.fixture(scope="module")
def settings(data_dir: Path, upstream: tuple[Upstream, str]) -> Settings:
    return gateway_settings(data_dir, upstream[1])


@pytest.fixture(scope="module")
def gateway_url(settings: Settings) -> Iterator[str]:
    with serve(create_app(settings)) as url:
        yield url


@pytest.fixture(scope="module")
def registry(settings: Settings) -> Iterator[ClientRegistry]:
    registry = ClientRegistry(settings.database_url)
    yield registry
    registry.close()


@pytest.fixture
def http(gateway_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway_url, timeout=20, verify=TLS) as client:
        yield client


@pytest.fixture
def short_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """Gateways created while this is active give up on a service after 0.5 s."""
    monkeypatch.setattr(
        "gateway.app.Forwarder",
        functools.partial(forwarder_module.Forwarder, total_timeout=0.5),
    )
