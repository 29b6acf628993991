"""Forwarding through the gateway to a real (tiny) service on a free port."""

from __future__ import annotations

import hashlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from gateway.app import create_app
from gateway.clients.registry import ClientRegistry
from tests.gateway.helpers import gateway_settings, serve, token_for
from tests.gateway.upstreams import Upstream

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def token(gateway_url: str, registry: ClientRegistry) -> str:
    client_id, secret = registry.create(
        "forwarding", "erp:read erp:write wms:read orders:read billing:read"
    )
    with httpx.Client(base_url=gateway_url) as http:
        return token_for(http, client_id, secret)


@pytest.fixture
def authed(http: httpx.Client, token: str) -> httpx.Client:
    http.headers["Authorization"] = f"Bearer {token}"
    return http


@pytest.fixture
def upstream_service(upstream: tuple[Upstream, str]) -> Upstream:
    return upstream[0]


def _headers(seen: dict[str, Any]) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    for name, value in seen["headers"]:
        result.setdefault(name, []).append(value)
    return result


def test_forwards_path_query_body_and_headers(
    authed: httpx.Client, upstream_service: Upstream, token: str
) -> None:
    response = authed.post(
        "/erp/v1/items/A%2FB?limit=5&cursor=x%20y",
        content=b'{"sku": "S-1"}',
        headers={"Content-Type": "application/json", "X-Custom": "kept", "Idempotency-Key": "k1"},
    )
    assert response.status_code == 201
    seen = response.json()
    assert seen["method"] == "POST"
    assert seen["raw_path"] == "/erp/v1/items/A%2FB"  # not decoded, not rewritten
    assert seen["query"] == "limit=5&cursor=x%20y"
    assert seen["body"] == '{"sku": "S-1"}'
    headers = _headers(seen)
    assert headers["x-custom"] == ["kept"]
    assert headers["idempotency-key"] == ["k1"]
    assert headers["content-type"] == ["application/json"]
    assert headers["content-length"] == ["14"]  # a known length stays a length
    assert "transfer-encoding" not in headers
    assert headers["authorization"] == [f"Bearer {token}"]  # the service verifies again
    assert headers["x-forwarded-proto"] == ["http"]
    assert headers["x-forwarded-for"] == ["127.0.0.1"]
    assert headers["host"] != headers["x-forwarded-host"]
    assert response.headers["x-upstream"] == "yes"
    assert upstream_service.calls[-1]["raw_path"] == "/erp/v1/items/A%2FB"


def test_strips_hop_by_hop_headers_both_ways(authed: httpx.Client) -> None:
    response = authed.get(
        "/erp/v1/items",
        headers={
            "Connection": "keep-alive, X-Hop",
            "X-Hop": "secret",
            "Keep-Alive": "timeout=5",
            "Proxy-Authorization": "Basic abc",
            "TE": "trailers",
            "Upgrade": "h2c",
        },
    )
    assert response.status_code == 200
    headers = _headers(response.json())
    for name in ("x-hop", "keep-alive", "proxy-authorization", "te", "upgrade"):
        assert name not in headers
    assert headers.get("connection", ["keep-alive"]) == ["keep-alive"]  # the pool's own
    cookies = response.headers.get_list("set-cookie")  # repeated headers all pass
    assert [cookie.split(";")[0] for cookie in cookies] == ["a=1", "b=2"]


def test_streams_the_request_body(authed: httpx.Client) -> None:
    parts = [b"x" * 70_000, b"y" * 70_000, b"z"]

    def chunks() -> Iterator[bytes]:
        yield from parts  # no Content-Length: chunked on both legs

    response = authed.put("/erp/v1/blobs/1", content=chunks())
    assert response.status_code == 200
    body = response.json()["body"].encode()
    assert hashlib.sha256(body).digest() == hashlib.sha256(b"".join(parts)).digest()


def test_streams_the_response_body(authed: httpx.Client, upstream_service: Upstream) -> None:
    upstream_service.release.clear()
    with authed.stream("GET", "/wms/v1/stream") as response:
        assert response.status_code == 200
        chunks = response.iter_raw()
        assert next(chunks) == b"first\n"  # arrives while the service still holds the rest
        upstream_service.release.set()
        rest = b"".join(chunks)
    assert rest == b"second\n"


def test_adds_a_correlation_id_when_absent(authed: httpx.Client) -> None:
    response = authed.get("/erp/v1/items")
    cid = response.headers["x-correlation-id"]
    seen = _headers(response.json())
    assert seen["x-correlation-id"] == [cid]
    assert len(response.headers.get_list("x-correlation-id")) == 1
    assert seen["traceparent"][0].startswith("00-")


def test_keeps_the_callers_correlation_id_and_trace(authed: httpx.Client) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    response = authed.get(
        "/erp/v1/items",
        headers={
            "X-Correlation-Id": "order-42.retry-1",
            "traceparent": f"00-{trace_id}-00f067aa0ba902b7-01",
        },
    )
    assert response.headers["x-correlation-id"] == "order-42.retry-1"
    seen = _headers(response.json())
    assert seen["x-correlation-id"] == ["order-42.retry-1"]
    assert seen["traceparent"][0].split("-")[1] == trace_id
    assert seen["traceparent"][0].split("-")[2] != "00f067aa0ba902b7"  # a child span


def test_no_token_is_a_401_problem_and_nothing_is_forwarded(
    http: httpx.Client, upstream_service: Upstream
) -> None:
    before = len(upstream_service.calls)
    response = http.post("/erp/v1/items", json={"sku": "S-1"})
    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["type"] == "/problems/unauthorized"
    assert problem["correlation_id"] == response.headers["x-correlation-id"]
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert len(upstream_service.calls) == before


@pytest.mark.parametrize("header", ["Bearer not-a-jwt", "Basic abc", "Token x.y.z"])
def test_bad_token_is_a_401_problem(
    http: httpx.Client, upstream_service: Upstream, header: str
) -> None:
    before = len(upstream_service.calls)
    response = http.get("/erp/v1/items", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM
    assert len(upstream_service.calls) == before


def test_token_for_another_api_is_refused(
    http: httpx.Client, registry: ClientRegistry, upstream_service: Upstream
) -> None:
    client_id, secret = registry.create("erp only", "erp:read")
    http.headers["Authorization"] = f"Bearer {token_for(http, client_id, secret)}"
    before = len(upstream_service.calls)
    assert http.get("/erp/v1/items").status_code == 200
    response = http.get("/orders/v1/orders")
    assert response.status_code == 403  # a good token without the grant (decision 0023)
    assert response.json()["type"] == "/problems/insufficient-scope"
    assert len(upstream_service.calls) == before + 1


def test_graphql_is_forwarded_for_the_portal_to_verify(
    http: httpx.Client, upstream_service: Upstream
) -> None:
    page = http.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200
    query = http.post("/graphql", json={"query": "{ __typename }"})
    assert query.status_code == 201
    assert query.json()["path"] == "/graphql"
    assert query.json()["body"] == '{"query":"{ __typename }"}'


def test_service_down_is_a_502_problem(authed: httpx.Client) -> None:
    response = authed.get("/billing/v1/invoices")
    assert response.status_code == 502
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["type"] == "/problems/bad-gateway"
    assert problem["correlation_id"] == response.headers["x-correlation-id"]
    assert "127.0.0.1" not in problem["detail"]  # no internal addresses to the public


def test_slow_service_is_a_504_problem(
    short_timeout: None, tmp_path: Path, upstream: tuple[Upstream, str], registry: ClientRegistry
) -> None:
    settings = gateway_settings(tmp_path, upstream[1])
    with serve(create_app(settings)) as url, httpx.Client(base_url=url) as http:
        client_id, secret = ClientRegistry(settings.database_url).create("slow", "wms:read")
        http.headers["Authorization"] = f"Bearer {token_for(http, client_id, secret)}"
        response = http.get("/wms/v1/slow")
    assert response.status_code == 504
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["type"] == "/problems/gateway-timeout"


@pytest.mark.parametrize(
    ("path", "slug"),
    [
        ("/erp/v2/items", "unknown-api-version"),
        ("/erp", "unknown-api-version"),
        ("/crm/v1/leads", "unknown-api"),
        ("/no-such-thing", "not-found"),
    ],
)
def test_unknown_routes_are_404_problems(
    authed: httpx.Client, upstream_service: Upstream, path: str, slug: str
) -> None:
    before = len(upstream_service.calls)
    response = authed.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["type"] == f"/problems/{slug}"
    assert response.json()["correlation_id"] == response.headers["x-correlation-id"]
    assert len(upstream_service.calls) == before


def test_contract_catalog(http: httpx.Client) -> None:
    catalog = http.get("/contracts").json()["items"]
    names = {entry["name"] for entry in catalog}
    assert names == {"erp", "wms", "availability", "orders", "billing", "graphql"}
    erp = next(entry for entry in catalog if entry["name"] == "erp")
    assert erp["version"] == "v1"
    assert erp["status"] == "current"
    assert erp["links"]["openapi"] == "/contracts/erp/v1/openapi.json"
    assert erp["links"]["docs"].endswith("/schema")
    document = http.get(erp["links"]["openapi"])
    assert document.status_code == 200
    assert document.json()["openapi"].startswith("3.1")
    assert http.get("/contracts/erp/v9/openapi.json").status_code == 404
    assert http.get("/contracts/crm/v1/openapi.json").status_code == 404
    down = http.get("/contracts/billing/v1/openapi.json")
    assert down.status_code == 502
    assert down.headers["content-type"] == PROBLEM


def test_health_readiness_and_metrics(http: httpx.Client) -> None:
    assert http.get("/healthz").json() == {"status": "ok"}
    assert http.get("/readyz").json() == {"status": "ready"}
    metrics = http.get("/metrics").text
    assert 'service="gateway"' in metrics
    assert 'route="/erp/v1/{path}"' in metrics


class RawService:
    """A bare HTTP/1.1 server on a socket, to see what the gateway's pool does: counts
    connections, answers HEAD with a length but no body, and can drop a kept-alive
    socket when a second request arrives on it (the race of a service closing an idle
    connection just as the gateway reuses it)."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests: list[bytes] = []
        self.drop_reused = False
        self.unframed = False  # answer without a length and close: the body ends at EOF
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        buffer = b""
        served = 0
        with sock:
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = sock.recv(65536)
                    if not data:
                        return
                    buffer += data
                if served and self.drop_reused:
                    return  # closed without an answer
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                self.requests.append(head)
                served += 1
                body = b'{"n": %d}' % len(self.requests)
                answer = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                if self.unframed:
                    sock.sendall(answer + b"\r\n" + body)
                    return
                answer += b"content-length: %d\r\n\r\n" % len(body)
                sock.sendall(answer if head.startswith(b"HEAD ") else answer + body)

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def raw(
    tmp_path: Path, upstream: tuple[Upstream, str]
) -> Iterator[tuple[RawService, httpx.Client]]:
    """A raw service behind /erp and a client of the gateway with a token for it."""
    service = RawService()
    settings = gateway_settings(tmp_path, upstream[1])
    urls = dict(settings.service_urls, erp=service.url)
    with serve(create_app(msgspec.structs.replace(settings, service_urls=urls))) as url:
        registry = ClientRegistry(settings.database_url)
        client_id, secret = registry.create("raw", "erp:read", tier="internal")
        registry.close()
        with httpx.Client(base_url=url, timeout=20) as http:
            http.headers["Authorization"] = f"Bearer {token_for(http, client_id, secret)}"
            yield service, http
    service.close()


def test_connections_to_a_service_are_kept_alive_and_reused(
    raw: tuple[RawService, httpx.Client],
) -> None:
    service, http = raw
    answers = [http.get(f"/erp/v1/items/{n}").json()["n"] for n in range(5)]
    assert answers == [1, 2, 3, 4, 5]
    assert service.connections == 1


def test_head_has_no_body_and_leaves_the_pool_sound(raw: tuple[RawService, httpx.Client]) -> None:
    _, http = raw
    head = http.head("/erp/v1/items/1")
    after = http.get("/erp/v1/items/2")
    assert head.status_code == 200
    assert head.headers["content-length"] == "8"
    assert head.content == b""
    assert after.json() == {"n": 2}  # not mistaken for the HEAD's "body"


def test_a_dropped_pooled_socket_is_retried_once_for_safe_methods_only(
    raw: tuple[RawService, httpx.Client],
) -> None:
    service, http = raw
    service.drop_reused = True
    first = http.get("/erp/v1/items/1")
    second = http.get("/erp/v1/items/2")  # meets the dropped socket, retried on a new one
    assert (first.status_code, second.status_code) == (200, 200)
    assert second.json() == {"n": 2}
    assert service.connections == 2
    unsafe = http.post("/erp/v1/items", json={})  # never retried: it may have acted
    assert unsafe.status_code == 502
    assert unsafe.headers["content-type"] == PROBLEM


def test_an_answer_that_ends_when_the_service_closes_is_relayed_whole(
    raw: tuple[RawService, httpx.Client],
) -> None:
    service, http = raw
    service.unframed = True
    answers = [http.get(f"/erp/v1/items/{n}") for n in range(2)]
    assert [answer.json() for answer in answers] == [{"n": 1}, {"n": 2}]
    assert service.connections == 2  # such a socket is never reused
