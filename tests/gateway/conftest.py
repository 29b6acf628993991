from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import uvicorn

from gateway.app import create_app
from gateway.clients.registry import ClientRegistry
from gateway.routing import forwarder as forwarder_module
from shared.settings import Settings, load_settings
from tests.gateway.upstream import Upstream
from tests.support.servers import free_port


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Runs an ASGI app with uvicorn on a free loopback port in a thread."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[Upstream, str]]:
    service = Upstream()
    with serve(service.app) as url:
        yield service, url


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gateway-data")


def gateway_settings(data_dir: Path, upstream_url: str) -> Settings:
    settings = load_settings("gateway", data_dir=data_dir)
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    urls = dict(settings.service_urls)
    urls.update(erp=upstream_url, wms=upstream_url, order_to_ship=upstream_url)
    urls.update(portal=upstream_url, billing=dead, availability=dead)
    return msgspec.structs.replace(settings, service_urls=urls)


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
    with httpx.Client(base_url=gateway_url, timeout=20) as client:
        yield client


@pytest.fixture
def short_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """Gateways created while this is active give up on a service after 0.5 s."""
    monkeypatch.setattr(
        "gateway.app.Forwarder",
        functools.partial(forwarder_module.Forwarder, total_timeout=0.5),
    )


def token_for(http: httpx.Client, client_id: str, secret: str, scope: str | None = None) -> str:
    form = {"grant_type": "client_credentials"} | ({"scope": scope} if scope else {})
    response = http.post("/oauth/token", data=form, auth=(client_id, secret))
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])
