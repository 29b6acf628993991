"""Body size (413), header size (431) and per-route upstream timeouts (504): each a
problem+json answer, and the service acts on nothing refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gateway.helpers import Gateway, gateway_with
from tests.gateway.upstreams import Upstream
from tests.support.problems import assert_problem

LIMIT = 1000


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, upstream: tuple[Upstream, str]
) -> Iterator[Gateway]:
    data_dir: Path = tmp_path_factory.mktemp("limits")
    with gateway_with(
        data_dir,
        upstream[1],
        max_body_bytes=LIMIT,
        max_header_bytes=2000,
        upstream_timeouts={"/wms/v1/slow": 0.5},
    ) as gw:
        yield gw


@pytest.fixture(scope="module")
def token(gateway: Gateway) -> str:
    return gateway.new_client("erp:write wms:read", tier="internal")[1]


@pytest.fixture
def service(upstream: tuple[Upstream, str]) -> Upstream:
    return upstream[0]


def test_declared_oversized_body_is_413(gateway: Gateway, token: str, service: Upstream) -> None:
    before = len(service.calls)
    with gateway.client(Authorization=f"Bearer {token}") as http:
        response = http.post("/erp/v1/items", content=b"x" * (LIMIT + 1))
        at_limit = http.post("/erp/v1/items", content=b"x" * LIMIT)
    assert_problem(response, 413, "payload-too-large")
    assert at_limit.status_code == 201
    assert len(service.calls) == before + 1


def test_chunked_body_growing_past_the_limit_is_413(
    gateway: Gateway, token: str, service: Upstream
) -> None:
    def chunks() -> Iterator[bytes]:
        yield from (b"a" * 400, b"b" * 400, b"c" * 400)  # no Content-Length: chunked

    before = len(service.calls)
    with gateway.client(Authorization=f"Bearer {token}") as http:
        response = http.put("/erp/v1/blobs/1", content=chunks())
        assert_problem(response, 413, "payload-too-large")
        assert len(service.calls) == before  # the service got an aborted request only
        # The aborted upstream connection was not pooled: the next call is whole.
        fits = http.put("/erp/v1/blobs/2", content=iter([b"d" * 500, b"e" * 500]))
    assert fits.status_code == 200
    assert fits.json()["body"] == "d" * 500 + "e" * 500
    assert len(service.calls) == before + 1


def test_oversized_headers_are_431(gateway: Gateway, token: str, service: Upstream) -> None:
    before = len(service.calls)
    with gateway.client(Authorization=f"Bearer {token}") as http:
        response = http.get("/erp/v1/items", headers={"X-Big": "y" * 2500})
        many = http.get("/erp/v1/items", headers={f"X-H{n}": "1" for n in range(120)})
    assert_problem(response, 431, "headers-too-large")
    assert_problem(many, 431, "headers-too-large")
    assert len(service.calls) == before


def test_route_timeout_is_a_504_and_other_routes_keep_the_default(
    gateway: Gateway, token: str, service: Upstream
) -> None:
    service.release.set()
    with gateway.client(Authorization=f"Bearer {token}") as http:
        slow = http.get("/wms/v1/slow")
        other = http.get("/wms/v1/stream")  # the default timeout (30 s) still applies
    assert_problem(slow, 504, "gateway-timeout")
    assert other.status_code == 200
