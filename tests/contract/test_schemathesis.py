"""Schemathesis, every default check on, against every served major of every API on
the running platform (the version table in shared/versions.py), direct to the service
and through the gateway with a real token.

Each run loads the major's own document from the gateway's catalog
(``/contracts/{api}/v{major}/openapi.json``, the service's document cut to that major),
so availability v1 and v2 are two runs each way. The stateful phase follows the
OpenAPI links of shared/openapi.py (order created -> read -> cancel; receipt -> the
receipt and the stock it added).

The CLI runner is used (not the pytest plugin, whose ``from_fixture`` loader breaks on
pytest 9.2.0): it loads the schema from the live platform after the fixture started
it. Settings (accepted statuses, phases) are in schemathesis.toml.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from shared.topology import BY_API
from shared.versions import VERSIONS
from tests.support.platform import PlatformClient

SCHEMATHESIS = str(Path(sys.executable).parent / "schemathesis")
REPO = Path(__file__).resolve().parents[2]
# The APIs whose documents carry OpenAPI links: their stateful phase must run, not skip.
LINKED = {"orders", "wms"}
SERVED = [pytest.param(v.api, v.major, id=f"{v.api}-{v.name}") for v in VERSIONS if v.served]
# What a partner's client may call: the process APIs (system APIs refuse bound clients).
PARTNER_APIS = {"orders", "billing", "availability"}
PARTNER_SERVED = [p for p in SERVED if p.values[0] in PARTNER_APIS]


def _run(
    schema_url: str, base_url: str | None, bearer: str, examples: int, *extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            SCHEMATHESIS,
            "run",
            schema_url,
            *(["--url", base_url] if base_url else []),
            *extra,
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


def _document(platform: PlatformClient, api: str, major: int) -> str:
    return f"{platform.gateway}/contracts/{api}/v{major}/openapi.json"


@pytest.mark.parametrize(("api", "major"), SERVED)
def test_every_version_honours_its_contract_directly(
    platform: PlatformClient, api: str, major: int
) -> None:
    base = platform.url(BY_API[api].name)
    result = _run(_document(platform, api, major), base, platform.token(), examples=25)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    if api in LINKED:
        assert "✅ Stateful" in result.stdout, result.stdout[-3000:]


@pytest.mark.parametrize(("api", "major"), SERVED)
def test_every_version_honours_its_contract_through_the_gateway(
    platform: PlatformClient, api: str, major: int
) -> None:
    document = _document(platform, api, major)
    result = _run(document, platform.gateway, platform.token(), examples=10)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    if api in LINKED:
        assert "✅ Stateful" in result.stdout, result.stdout[-3000:]


@pytest.fixture(scope="module")
def partner_token(platform: PlatformClient) -> str:
    """A partner-shaped client: bound to one seeded customer, narrow scopes, made the
    operator's way (`tally clients create`). Tier internal, so the run is not cut short
    by the rate limit (the limits have their own tests)."""
    created = subprocess.run(
        [
            sys.executable,
            "-m",
            "tally",
            "clients",
            "create",
            "--name",
            "schemathesis-partner",
            "--scopes",
            "orders:read orders:write inventory:read billing:read",
            "--customer",
            "CUST-ACME",
            "--tier",
            "internal",
            "--json",
            "--data-dir",
            str(platform.platform.data_dir),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    client = json.loads(created.stdout)
    return platform.token(client["client_id"], client["client_secret"])


@pytest.mark.parametrize(("api", "major"), PARTNER_SERVED)
def test_a_partner_token_meets_the_same_contract_through_the_gateway(
    platform: PlatformClient, partner_token: str, api: str, major: int
) -> None:
    """The same checks with a bound, narrow token: its refusals (403 for a missing
    scope, 404 for another customer's object) must be documented answers too."""
    result = _run(_document(platform, api, major), platform.gateway, partner_token, examples=10)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def test_the_stateful_links_are_in_the_served_documents(platform: PlatformClient) -> None:
    """The stateful phase has something to follow (a document without links would make
    it a silent no-op)."""
    with platform.client() as http:
        orders = http.get("/contracts/orders/v1/openapi.json").json()
        wms = http.get("/contracts/wms/v1/openapi.json").json()
    placed = orders["paths"]["/orders/v1/orders"]["post"]["responses"]["201"]["links"]
    assert {link["operationId"] for link in placed.values()} == {"getOrder", "cancelOrder"}
    received = wms["paths"]["/wms/v1/receipts"]["post"]["responses"]["201"]["links"]
    assert {link["operationId"] for link in received.values()} == {"getReceipt", "listStock"}


@pytest.mark.parametrize("through", ["portal", "gateway"])
def test_portal_graphql_honours_its_schema(platform: PlatformClient, through: str) -> None:
    """Every default check but positive_data_acceptance (ST206: any BAD_USER_INPUT answer
    to a schema-valid query), as in test_schemathesis_graphql.py: the portal refuses some
    values its types allow (a search with control characters, a malformed date) with a
    BAD_USER_INPUT error, as the REST runs accept documented 4xx (schemathesis.toml)."""
    url = f"{platform.url('portal') if through == 'portal' else platform.gateway}/graphql"
    skip = ("--exclude-checks", "positive_data_acceptance")
    result = _run(url, None, platform.token(), 25, *skip)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
