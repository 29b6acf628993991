"""Schemathesis, every default check on, against each service's OpenAPI document on
the running platform: direct to the service and through the gateway with a real token.

The CLI runner is used (not the pytest plugin): it loads the schema from the live
service after the platform fixture started it, and runs the stateful phase too.
Settings (the accepted statuses for schema-valid data) are in schemathesis.toml.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.platform import PlatformClient

SCHEMATHESIS = str(Path(sys.executable).parent / "schemathesis")
REPO = Path(__file__).resolve().parents[2]
REST_SERVICES = ["erp", "wms", "availability", "order_to_ship", "billing"]


def _run(
    schema_url: str, base_url: str | None, bearer: str, examples: int
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            SCHEMATHESIS,
            "run",
            schema_url,
            *(["--url", base_url] if base_url else []),
            "--header",
            f"Authorization: Bearer {bearer}",
            "--max-examples",
            str(examples),
            "--seed",
            "20261123",
            "--generation-database",
            "none",
            "--no-color",
            "--request-timeout",
            "30",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
    )


@pytest.mark.parametrize("service", REST_SERVICES)
def test_service_honours_its_contract_directly(platform: PlatformClient, service: str) -> None:
    base = platform.url(service)
    result = _run(f"{base}/schema/openapi.json", base, platform.token(), examples=25)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


@pytest.mark.parametrize("service", REST_SERVICES)
def test_service_honours_its_contract_through_the_gateway(
    platform: PlatformClient, service: str
) -> None:
    schema = f"{platform.url(service)}/schema/openapi.json"
    result = _run(schema, platform.gateway, platform.token(), examples=10)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


@pytest.mark.parametrize("through", ["portal", "gateway"])
def test_portal_graphql_honours_its_schema(platform: PlatformClient, through: str) -> None:
    url = f"{platform.url('portal') if through == 'portal' else platform.gateway}/graphql"
    result = _run(url, None, platform.token(), examples=25)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
