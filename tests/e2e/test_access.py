"""Requests without a token, with an expired one or without the route's scope are
refused by the gateway and by each service reached directly, with problem+json."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.support.platform import PlatformClient

PROTECTED = [
    ("erp", "GET", "/erp/v1/items"),
    ("wms", "GET", "/wms/v1/fulfillment-orders"),
    ("availability", "GET", "/availability/v1/items/SKU-1001"),
    ("order_to_ship", "GET", "/orders/v1/orders"),
    ("billing", "GET", "/billing/v1/invoices"),
]


def _expired_token(platform: PlatformClient) -> str:
    """Signed with the gateway's real key (read from the data dir), but expired."""
    keys = json.loads((platform.platform.data_dir / "keys" / "signing-keys.json").read_text())
    key_set = KeySet.import_key_set(keys if "keys" in keys else {"keys": keys})
    key = key_set.keys[-1]
    now = int(time.time())
    claims = {
        "iss": _issuer(platform),
        "aud": ["erp", "wms", "availability", "orders", "billing", "graphql"],
        "sub": platform.demo_id,
        "client_id": platform.demo_id,
        "scope": "admin",
        "jti": uuid.uuid4().hex,
        "iat": now - 3600,
        "exp": now - 1800,
    }
    return jwt.encode({"alg": "ES256", "kid": key.kid, "typ": "at+jwt"}, claims, key)


def _issuer(platform: PlatformClient) -> str:
    meta = httpx.get(f"{platform.gateway}/.well-known/oauth-authorization-server", timeout=10)
    return str(meta.json()["issuer"])


def _assert_refused(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == status


@pytest.mark.parametrize(("service", "method", "path"), PROTECTED)
def test_no_token_is_refused_at_the_gateway_and_the_service(
    platform: PlatformClient, service: str, method: str, path: str
) -> None:
    _assert_refused(httpx.request(method, platform.gateway + path, timeout=10), 401)
    _assert_refused(httpx.request(method, platform.url(service) + path, timeout=10), 401)


@pytest.mark.parametrize(("service", "method", "path"), PROTECTED)
def test_expired_token_is_refused_at_the_gateway_and_the_service(
    platform: PlatformClient, service: str, method: str, path: str
) -> None:
    headers = {"Authorization": f"Bearer {_expired_token(platform)}"}
    _assert_refused(
        httpx.request(method, platform.gateway + path, headers=headers, timeout=10), 401
    )
    _assert_refused(
        httpx.request(method, platform.url(service) + path, headers=headers, timeout=10), 401
    )


def test_a_fresh_token_from_the_same_key_is_accepted(platform: PlatformClient) -> None:
    # Guards the expired-token test: the same key and claims, unexpired, do pass.
    response = httpx.get(
        platform.gateway + "/erp/v1/items",
        headers={"Authorization": f"Bearer {platform.token()}"},
        timeout=10,
    )
    assert response.status_code == 200


def test_missing_scope_is_403_through_the_gateway_and_direct(platform: PlatformClient) -> None:
    created = subprocess.run(
        [
            sys.executable,
            "-m",
            "tally",
            "clients",
            "create",
            "--name",
            "read-only-partner",
            "--scopes",
            "orders:read",
            "--json",
            "--data-dir",
            str(platform.platform.data_dir),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    creds = json.loads(created.stdout)
    bearer = platform.token(creds["client_id"], creds["client_secret"])
    body = {
        "customer_id": "CUST-ACME",
        "channel": "edi",
        "lines": [{"sku": "SKU-1001", "quantity": 1}],
    }
    headers = {"Authorization": f"Bearer {bearer}", "Idempotency-Key": f"scope-{uuid.uuid4()}"}
    for base in (platform.gateway, platform.url("order_to_ship")):
        response = httpx.post(f"{base}/orders/v1/orders", json=body, headers=headers, timeout=10)
        _assert_refused(response, 403)
        assert response.json()["type"] == "/problems/insufficient-scope"
    # The same client may read, so the 403 is about scope and nothing else.
    listed = httpx.get(f"{platform.gateway}/orders/v1/orders", headers=headers, timeout=10)
    assert listed.status_code == 200
