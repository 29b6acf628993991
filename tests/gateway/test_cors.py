"""CORS for the configured portal origins: preflights answered at the gateway, only
listed origins echoed (never ``*``, since credentials are allowed)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gateway.helpers import Gateway, gateway_with
from tests.gateway.upstreams import Upstream
from tests.support.problems import assert_problem

PORTAL = "https://portal.example.com"
OTHER = "https://evil.example.net"


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, upstream: tuple[Upstream, str]
) -> Iterator[Gateway]:
    data_dir: Path = tmp_path_factory.mktemp("cors")
    with gateway_with(
        data_dir, upstream[1], cors_origins=(PORTAL, "https://b2b.example.com")
    ) as gw:
        yield gw


@pytest.fixture
def service(upstream: tuple[Upstream, str]) -> Upstream:
    return upstream[0]


def test_preflight_from_a_portal_origin(gateway: Gateway, service: Upstream) -> None:
    before = len(service.calls)
    with gateway.client() as http:
        response = http.options(
            "/orders/v1/orders",
            headers={
                "Origin": PORTAL,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "Authorization, Content-Type, Idempotency-Key",
            },
        )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == PORTAL
    assert response.headers["access-control-allow-credentials"] == "true"
    assert response.headers["access-control-allow-methods"] == "POST"
    allowed = response.headers["access-control-allow-headers"]
    assert allowed == "authorization, content-type, idempotency-key"
    assert "Origin" in response.headers["vary"]
    assert len(service.calls) == before  # answered at the gateway, no token needed


@pytest.mark.parametrize(
    ("origin", "method", "headers"),
    [
        (OTHER, "POST", ""),
        (PORTAL + ".evil.net", "GET", ""),
        ("null", "GET", ""),
        (PORTAL, "TRACE", ""),
        (PORTAL, "POST", "Authorization, X-Debug-Admin"),
    ],
)
def test_refused_preflights_are_403_problems(
    gateway: Gateway, service: Upstream, origin: str, method: str, headers: str
) -> None:
    before = len(service.calls)
    request_headers = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers:
        request_headers["Access-Control-Request-Headers"] = headers
    with gateway.client() as http:
        response = http.options("/orders/v1/orders", headers=request_headers)
    assert_problem(response, 403, "cors-refused")
    assert "access-control-allow-origin" not in response.headers
    assert len(service.calls) == before


def test_answers_to_a_portal_origin_carry_the_allow_fields(gateway: Gateway) -> None:
    _, token = gateway.new_client("orders:read", tier="gold")
    with gateway.client(Origin=PORTAL) as http:
        ok = http.get("/orders/v1/orders", headers={"Authorization": f"Bearer {token}"})
        refused = http.get("/orders/v1/orders")  # 401: the browser app may read it too
    for response in (ok, refused):
        assert response.headers["access-control-allow-origin"] == PORTAL
        assert response.headers["access-control-allow-credentials"] == "true"
        exposed = response.headers["access-control-expose-headers"]
        assert "RateLimit-Remaining" in exposed and "X-Correlation-Id" in exposed
    assert ok.status_code == 200
    assert_problem(refused, 401, "unauthorized")


def test_other_origins_get_no_allow_fields(gateway: Gateway) -> None:
    with gateway.client(Origin=OTHER) as http:
        response = http.get("/contracts")
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers
    assert response.headers["vary"] == "Origin"
    with gateway.client() as http:  # no Origin: not a browser's cross-origin call
        plain = http.get("/contracts")
    assert "access-control-allow-origin" not in plain.headers
