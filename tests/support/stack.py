"""Real services on loopback ports for integration tests.

- ``ThreadServer`` serves one ASGI app with uvicorn in a background thread (its own
  event loop, lifespan on) and waits until ``/healthz`` answers (or uvicorn has started).
- ``StaticServiceTokens`` stands in for a service's OAuth client: ``bearer()`` returns a
  ``TestIssuer`` token with the scopes and audiences the service's client gets from
  ``tally up`` (``SERVICE_GRANTS``, per ADR 0002).
- ``Stack`` builds every importable service from its ``create_app`` (import strings in
  ``shared.topology``) on free ports, all sharing one data directory and the embedded
  event log, wired to each other through ``settings.service_urls``. ``stack.down(name)``
  stops one service for an outage and starts it again afterwards (its port, its data).

    with Stack(tmp_path, issuer, ["erp", "wms", "availability", "order_to_ship"]) as stack:
        orders = stack.client("order_to_ship", "orders:write orders:read")
"""

from __future__ import annotations

import asyncio
import importlib
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import httpx
import msgspec
import uvicorn

from shared.auth.service_tokens import ServiceTokens
from shared.settings import Settings, load_settings
from shared.topology import ALL_AUDIENCES, BY_NAME, SERVICES
from tests.support.polling import Exited, wait_until, wait_until_answers
from tests.support.ports import free_port
from tests.support.tls import TLS
from tests.support.tokens import TestIssuer

# What each calling service's internal client may do (ADR 0002, "Service clients").
SERVICE_GRANTS: dict[str, tuple[str, list[str]]] = {
    "order_to_ship": (
        "erp:read erp:write inventory:read inventory:write wms:read wms:write",
        ["erp", "availability", "wms"],
    ),
    "billing": ("orders:read erp:read erp:write", ["orders", "erp"]),
}
DEFAULT_GRANT = ("admin", list(ALL_AUDIENCES))


class ThreadServer:
    """One app under uvicorn in a daemon thread. Started once ``health_path`` answers 200
    (a service's ``/healthz``), or, with ``health_path=None`` (a fake without one), once
    uvicorn has run the app's start-up and listens."""

    def __init__(
        self, app: Any, port: int | None = None, *, health_path: str | None = "/healthz"
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.health_path = health_path
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            lifespan="on",
            log_level="warning",
            http="shared.http_server:HttpProtocol",  # as `tally serve` serves them
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name=f"uvicorn-{self.port}")
        self.thread.daemon = True

    def start(self, timeout: float = 20.0) -> str:
        self.thread.start()
        try:
            if self.health_path is None:
                wait_until(self._started, timeout=timeout, what=f"the server on {self.url}")
            else:
                url = f"{self.url}{self.health_path}"
                wait_until_answers(url, alive=self.thread.is_alive, timeout=timeout)
        except BaseException:
            self.stop()
            raise
        return self.url

    def _started(self) -> bool:
        if not self.thread.is_alive():
            raise Exited(f"server on {self.url} exited during start-up")
        return bool(self.server.started)

    def stop(self, timeout: float = 15.0) -> None:
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(timeout)

    def __enter__(self) -> ThreadServer:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


class StaticServiceTokens(ServiceTokens):
    """A service's own token, minted by the test issuer instead of fetched from the
    gateway (re-minted shortly before it expires)."""

    def __init__(
        self, issuer: TestIssuer, scopes: str, audience: Sequence[str], client_id: str
    ) -> None:
        super().__init__(cast(httpx.AsyncClient, None), "http://unused.invalid/token", None, None)
        self.issuer = issuer
        self.scopes = scopes
        self.audience = list(audience)
        self.client_id = client_id
        self._minted: tuple[str, float] | None = None

    async def bearer(self) -> str:
        if self._minted is None or self._minted[1] < time.time() + 60:
            token = self.issuer.token(
                self.scopes, audience=self.audience, client_id=self.client_id, expires_in=3600
            )
            self._minted = (token, time.time() + 3600)
        return self._minted[0]


def service_tokens(issuer: TestIssuer, service: str) -> StaticServiceTokens:
    scopes, audience = SERVICE_GRANTS.get(service, DEFAULT_GRANT)
    return StaticServiceTokens(issuer, scopes, audience, client_id=f"svc-{service}")


def stack_settings(
    service: str, data_dir: Path, urls: dict[str, str], issuer: TestIssuer
) -> Settings:
    """Settings of one service inside a test stack: its own SQLite file, the shared
    event log, sibling URLs, the test issuer, and fast relay/consumer polling."""
    base = load_settings(service, data_dir=data_dir)
    return msgspec.structs.replace(
        base,
        database_url=f"sqlite+aiosqlite:///{data_dir / (service + '.db')}",
        bus_url=f"sqlite:///{data_dir / 'events.db'}",
        issuer=issuer.issuer,
        service_urls=dict(urls),
        outbox_poll_seconds=0.05,
        consumer_block_ms=50,
    )


def app_factory(service: str) -> Callable[..., Any] | None:
    """The service's ``create_app``, or None while it is not written yet."""
    module_name, _, attr = BY_NAME[service].app_factory.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    factory = getattr(module, attr, None)
    return factory if callable(factory) else None


def build_service_app(
    service: str,
    settings: Settings,
    issuer: TestIssuer,
    **options: Any,
) -> Any:
    """``create_app`` with the test issuer's keys, a ``service_tokens`` stand-in and the
    service's own ``options`` (keywords only that service's factory takes)."""
    factory = app_factory(service)
    if factory is None:
        raise LookupError(f"{service} has no create_app yet")
    return factory(
        settings,
        key_source=issuer.key_source(),
        service_tokens=service_tokens(issuer, service),
        **options,
    )


class Stack:
    """Starts the requested services that exist (``available``), on free ports."""

    def __init__(
        self,
        data_dir: Path,
        issuer: TestIssuer,
        services: Iterable[str],
        *,
        options: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.issuer = issuer
        self.wanted = list(services)
        self.options = options or {}
        self.ports = {spec.name: free_port() for spec in SERVICES}
        self.urls = {name: f"http://127.0.0.1:{port}" for name, port in self.ports.items()}
        self.servers: dict[str, ThreadServer] = {}
        self.available = [name for name in self.wanted if app_factory(name) is not None]
        self.missing = [name for name in self.wanted if name not in self.available]

    def settings(self, service: str, **changes: Any) -> Settings:
        settings = stack_settings(service, self.data_dir, self.urls, self.issuer)
        return msgspec.structs.replace(settings, **changes) if changes else settings

    def app(self, service: str, settings: Settings | None = None, **extra: Any) -> Any:
        options = {**self.options.get(service, {}), **extra}
        return build_service_app(
            service, settings or self.settings(service), self.issuer, **options
        )

    def start(self) -> Stack:
        try:
            for name in self.available:
                server = ThreadServer(self.app(name), self.ports[name])
                server.start()
                self.servers[name] = server
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for server in reversed(list(self.servers.values())):
            server.stop()
        self.servers.clear()

    def stop_service(self, name: str) -> None:
        """Stops one service (an outage); its port and data stay for ``start_service``."""
        self.servers.pop(name).stop()

    def start_service(self, name: str) -> None:
        """Starts a stopped service again, on its port, with its data."""
        assert name not in self.servers, f"{name} is running"
        server = ThreadServer(self.app(name), self.ports[name])
        server.start()
        self.servers[name] = server

    @contextmanager
    def down(self, name: str) -> Iterator[None]:
        """``name`` stopped inside the block, started again after it (even on failure)."""
        self.stop_service(name)
        try:
            yield
        finally:
            if name not in self.servers:
                self.start_service(name)

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def has(self, *services: str) -> bool:
        return all(name in self.servers for name in services)

    def token(self, service: str, scopes: str, **claims: Any) -> str:
        api = BY_NAME[service].api or service
        return self.issuer.token(scopes, audience=api, **claims)

    def client(
        self,
        service: str,
        scopes: str = "admin",
        *,
        customer_id: str | None = None,
        client_id: str = "test-client",
    ) -> httpx.Client:
        token = self.token(service, scopes, customer_id=customer_id, client_id=client_id)
        return httpx.Client(
            base_url=self.urls[service],
            headers={"Authorization": f"Bearer {token}"},
            timeout=30.0,
            verify=TLS,
        )

    def bus_path(self) -> Path:
        return self.data_dir / "events.db"

    def publish(self, stream: str, events: Sequence[Any]) -> None:
        """Appends events to the shared embedded log, as a producer's relay would."""
        from shared.events.sqlite_log import SqliteEventLog

        async def run() -> None:
            log = SqliteEventLog(self.bus_path())
            try:
                await log.publish(stream, list(events))
            finally:
                await log.close()

        asyncio.run(run())
