"""Helpers of the gateway tests: a gateway (or any ASGI app) on a loopback port, its
settings around a fake upstream, and tokens from its token endpoint."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgspec
from joserfc import jwt

from gateway.app import create_app
from gateway.clients.registry import ClientRegistry
from shared.settings import Settings, load_settings
from tests.support.ports import free_port
from tests.support.stack import ThreadServer
from tests.support.tls import TLS


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Runs an ASGI app with uvicorn on a free loopback port in a thread."""
    server = ThreadServer(app, health_path=None)
    try:
        yield server.start(timeout=15)
    finally:
        server.stop(timeout=10)


def gateway_settings(data_dir: Path, upstream_url: str) -> Settings:
    settings = load_settings("gateway", data_dir=data_dir)
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    urls = dict(settings.service_urls)
    urls.update(erp=upstream_url, wms=upstream_url, order_to_ship=upstream_url)
    urls.update(portal=upstream_url, billing=dead, availability=dead)
    return msgspec.structs.replace(settings, service_urls=urls)


def token_for(http: httpx.Client, client_id: str, secret: str, scope: str | None = None) -> str:
    form = {"grant_type": "client_credentials"} | ({"scope": scope} if scope else {})
    response = http.post("/oauth/token", data=form, auth=(client_id, secret))
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


@dataclass(frozen=True)
class Gateway:
    url: str
    settings: Settings

    def client(self, **headers: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=20, headers=headers, verify=TLS)

    def new_client(
        self, scopes: str, *, tier: str = "bronze", customer_id: str | None = None
    ) -> tuple[str, str]:
        """Registers a client and gets it a token: (client_id, access token)."""
        registry = ClientRegistry(self.settings.database_url)
        try:
            client_id, secret = registry.create("test", scopes, customer_id=customer_id, tier=tier)
        finally:
            registry.close()
        with self.client() as http:
            return client_id, token_for(http, client_id, secret)


@contextmanager
def gateway_with(data_dir: Path, upstream_url: str, **overrides: Any) -> Iterator[Gateway]:
    """A gateway of its own (its own data dir) with some settings changed."""
    settings = msgspec.structs.replace(gateway_settings(data_dir, upstream_url), **overrides)
    with serve(create_app(settings)) as url:
        yield Gateway(url, settings)


def client_assertion(
    client_id: str,
    key: Any,
    settings: Settings,
    *,
    kid: str,
    lifetime: int,
    **changes: Any,
) -> str:
    """An RFC 7523 client assertion for the token endpoint, signed with ``key``. A
    ``header=`` dict or a claim given as ``None`` removes that member, so a test can send
    what a broken client would."""
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": f"{settings.issuer}/oauth/token",
        "iat": now,
        "exp": now + lifetime,
        "jti": uuid.uuid4().hex,
    }
    header = {"alg": "ES256", "kid": kid} | changes.pop("header", {})
    claims |= changes
    return jwt.encode(
        {k: v for k, v in header.items() if v is not None},
        {k: v for k, v in claims.items() if v is not None},
        key,
    )
