"""A service that cannot fetch the gateway's signing keys (the gateway is down or
restarting) answers 503, try again, not 401: a caller that gives up on a 401 (the
billing inbox dead-letters its event) must not lose work to a gateway restart. And a
service whose own token is refused asks the gateway for a new one, once."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from litestar.testing import TestClient

from shared.auth.service_tokens import ServiceTokens
from shared.auth.verifier import RemoteJwks
from shared.http import Downstream
from shared.settings import load_settings
from tests.support.ports import free_port
from tests.support.stack import app_factory, service_tokens
from tests.support.tokens import TestIssuer


def _serve_jwks(port: int, jwks: dict[str, Any]) -> ThreadingHTTPServer:
    body = json.dumps(jwks).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def erp_behind_a_dead_gateway(tmp_path: Path) -> Iterator[tuple[TestClient[Any], int]]:
    """The ERP service whose JWKS URL points at a port nobody listens on (yet)."""
    settings = load_settings("erp", data_dir=tmp_path)
    settings = msgspec.structs.replace(
        settings,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'erp.db'}",
        bus_url=f"sqlite:///{tmp_path / 'events.db'}",
    )
    port = free_port()
    issuer = TestIssuer()
    factory = app_factory("erp")
    assert factory is not None
    keys_client = httpx.AsyncClient()
    app = factory(
        settings,
        key_source=RemoteJwks(f"http://127.0.0.1:{port}/.well-known/jwks.json", keys_client),
        service_tokens=service_tokens(issuer, "erp"),
    )
    with TestClient(app) as client:
        client.headers["Authorization"] = "Bearer " + issuer.token("erp:read", audience="erp")
        client.app.state["issuer"] = issuer
        yield client, port


def test_unfetchable_keys_answer_try_again_then_the_token_is_accepted(
    erp_behind_a_dead_gateway: tuple[TestClient[Any], int],
) -> None:
    client, port = erp_behind_a_dead_gateway
    refused = client.get("/erp/v1/items/NOPE")
    assert refused.status_code == 503, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["type"] == "/problems/downstream-unavailable"
    assert "signing keys" in refused.json()["detail"]
    assert refused.headers["Retry-After"] == "1"
    # a malformed token is refused as such, whether or not the keys can be fetched
    garbage = client.get("/erp/v1/items/NOPE", headers={"Authorization": "Bearer not.a.jwt"})
    assert garbage.status_code == 401

    issuer: TestIssuer = client.app.state["issuer"]
    server = _serve_jwks(port, {"keys": [issuer.key.as_dict(private=False)]})
    try:
        answer = client.get("/erp/v1/items/NOPE")  # the gateway is back: the same token
        assert answer.status_code == 404, answer.text
    finally:
        server.shutdown()
        server.server_close()


class _CountingTokens(ServiceTokens):
    """Hands out tok-1, tok-2, ... : a new one only after the last was forgotten."""

    def __init__(self) -> None:
        super().__init__(httpx.AsyncClient(), "http://unused.invalid/token", "svc", "secret")
        self.issued = 0

    async def bearer(self) -> str:
        if self._token is None:
            self.issued += 1
            self._token = f"tok-{self.issued}"
        return self._token


async def test_a_refused_service_token_is_replaced_once() -> None:
    seen: list[str] = []
    accepted = {"Bearer tok-2"}

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Authorization"])
        ok = request.headers["Authorization"] in accepted
        return httpx.Response(200 if ok else 401, json={})

    tokens = _CountingTokens()
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        orders = Downstream("order_to_ship", "http://orders.invalid", client, tokens)
        first = await orders.request("GET", "/orders/v1/orders/X")
        assert first.status_code == 200
        assert seen == ["Bearer tok-1", "Bearer tok-2"]
        again = await orders.request("GET", "/orders/v1/orders/X")  # the new token is kept
        assert again.status_code == 200
        assert seen[2:] == ["Bearer tok-2"]

        accepted.clear()  # a token refused twice: the 401 is the answer, no third try
        refused = await orders.request("GET", "/orders/v1/orders/X")
        assert refused.status_code == 401
        assert seen[3:] == ["Bearer tok-2", "Bearer tok-3"]
