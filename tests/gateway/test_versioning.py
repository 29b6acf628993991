"""Versioned routing from the one version table (gateway/contracts/versions.py):
current majors pass, deprecated ones carry Deprecation/Sunset/Link, retired ones are
410, unknown ones 404; refused calls never reach the service."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from gateway.contracts import versions
from gateway.contracts.versions import ApiVersion
from tests.gateway.helpers import Gateway, gateway_with
from tests.gateway.upstreams import Upstream
from tests.support.problems import assert_problem

TABLE = (
    ApiVersion(
        "erp",
        1,
        "deprecated",
        deprecated_on=date(2026, 6, 1),
        sunset=date(2027, 1, 31),
        successor=2,
    ),
    ApiVersion("erp", 2, "current"),
    ApiVersion("wms", 1, "current"),
    ApiVersion("orders", 1, "retired", sunset=date(2026, 3, 31), successor=2),
    ApiVersion("orders", 2, "current"),
    ApiVersion("billing", 1, "current"),
    ApiVersion("availability", 1, "current"),
)


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, upstream: tuple[Upstream, str]
) -> Iterator[Gateway]:
    data_dir: Path = tmp_path_factory.mktemp("versions")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(versions, "VERSIONS", TABLE)
        with gateway_with(data_dir, upstream[1]) as gw:
            yield gw


@pytest.fixture(scope="module")
def token(gateway: Gateway) -> str:
    return gateway.new_client("erp:read wms:read orders:read", tier="internal")[1]


@pytest.fixture
def service(upstream: tuple[Upstream, str]) -> Upstream:
    return upstream[0]


def test_deprecated_major_is_served_with_deprecation_sunset_and_link(
    gateway: Gateway, token: str, service: Upstream
) -> None:
    before = len(service.calls)
    with gateway.client(Authorization=f"Bearer {token}") as http:
        response = http.get("/erp/v1/items")
        current = http.get("/wms/v1/stream")
    assert response.status_code == 200
    assert len(service.calls) == before + 1
    assert response.headers["deprecation"] == "@1780272000"  # 2026-06-01, RFC 9745
    assert response.headers["sunset"] == "Sun, 31 Jan 2027 00:00:00 GMT"  # RFC 8594
    assert '</contracts/erp/v2/schema>; rel="successor-version"' in response.headers["link"]
    for name in ("deprecation", "sunset", "link"):
        assert name not in current.headers


def test_deprecation_fields_are_on_refusals_too(gateway: Gateway) -> None:
    with gateway.client() as http:
        response = http.get("/erp/v1/items")  # no token
    assert_problem(response, 401, "unauthorized")
    assert response.headers["deprecation"] == "@1780272000"


def test_retired_major_is_410(gateway: Gateway, token: str, service: Upstream) -> None:
    before = len(service.calls)
    with gateway.client(Authorization=f"Bearer {token}") as http:
        response = http.get("/orders/v1/orders")
    assert_problem(response, 410, "api-version-retired")
    assert "/orders/v2" in response.json()["detail"]
    assert len(service.calls) == before


@pytest.mark.parametrize("path", ["/erp/v3/items", "/erp/v01/items", "/erp/items", "/wms/v2"])
def test_unknown_major_is_404(gateway: Gateway, token: str, service: Upstream, path: str) -> None:
    before = len(service.calls)
    with gateway.client(Authorization=f"Bearer {token}") as http:
        response = http.get(path)
    assert_problem(response, 404, "unknown-api-version")
    assert len(service.calls) == before


def test_a_new_current_major_is_routed(gateway: Gateway, token: str, service: Upstream) -> None:
    before = len(service.calls)
    with gateway.client(Authorization=f"Bearer {token}") as http:
        response = http.get("/erp/v2/items")
    # Forwarded: the 404 is the test service's own (it serves v1 paths only), not a
    # gateway problem.
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert "deprecation" not in response.headers
    assert len(service.calls) == before  # its echo route did not match


def test_the_real_table_routes_availability_v2_and_deprecates_v1(
    tmp_path: Path, upstream: tuple[Upstream, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared import versions as shared_versions

    monkeypatch.setattr(versions, "VERSIONS", shared_versions.VERSIONS)
    v1 = shared_versions.find("availability", 1)
    assert v1 is not None and v1.status == "deprecated" and v1.successor == 2
    with gateway_with(tmp_path, upstream[1]) as gw:
        token = gw.new_client("inventory:read", tier="internal")[1]
        with gw.client(Authorization=f"Bearer {token}") as http:
            old = http.get("/availability/v1/items/SKU-1")
            new = http.get("/availability/v2/items/SKU-1")
    assert old.headers["deprecation"] == shared_versions.deprecation_headers(v1)["Deprecation"]
    assert old.headers["sunset"] == "Mon, 31 May 2027 00:00:00 GMT"
    assert '</contracts/availability/v2/schema>; rel="successor-version"' in old.headers["link"]
    # Both majors are routed and forwarded (no availability service listens here: 502,
    # where an unknown major would be 404 before any forwarding).
    assert (old.status_code, new.status_code) == (502, 502)
    for name in ("deprecation", "sunset", "link"):
        assert name not in new.headers
