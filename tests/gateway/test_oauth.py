"""The authorization server: client authentication, scopes, RFC 9068 tokens, keys."""

from __future__ import annotations

import asyncio
import base64
import json
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.clients.registry import ClientRegistry
from gateway.oauth.keys import KeyStore
from gateway.oauth.server import TallyAuthorizationServer
from shared.auth.verifier import InvalidToken, StaticKeys, TokenVerifier
from shared.settings import Settings
from tests.gateway.conftest import token_for


def _segment(token: str, index: int) -> dict[str, Any]:
    part = token.split(".")[index]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


@pytest.fixture
def bound_client(registry: ClientRegistry) -> tuple[str, str]:
    return registry.create(
        "acme portal", "orders:read orders:write portal", customer_id="CUST-A", tier="silver"
    )


def test_token_via_client_secret_basic(http: httpx.Client, bound_client: tuple[str, str]) -> None:
    client_id, secret = bound_client
    response = http.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert body["scope"] == "orders:read orders:write portal"
    assert response.headers["cache-control"] == "no-store"
    assert "refresh_token" not in body


def test_token_via_client_secret_post(http: httpx.Client, bound_client: tuple[str, str]) -> None:
    client_id, secret = bound_client
    form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    response = http.post("/oauth/token", data=form)
    assert response.status_code == 200
    assert response.json()["access_token"].count(".") == 2


@pytest.mark.parametrize("how", ["basic", "post"])
def test_wrong_secret_is_401_invalid_client(
    http: httpx.Client, bound_client: tuple[str, str], how: str
) -> None:
    client_id, _ = bound_client
    form = {"grant_type": "client_credentials"}
    if how == "basic":
        response = http.post("/oauth/token", data=form, auth=(client_id, "wrong"))
    else:
        form |= {"client_id": client_id, "client_secret": "wrong"}
        response = http.post("/oauth/token", data=form)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["content-type"] == "application/json"


def test_unknown_client_gets_the_same_answer_as_a_wrong_secret(http: httpx.Client) -> None:
    form = {"grant_type": "client_credentials", "client_id": "cli_nobody", "client_secret": "x"}
    response = http.post("/oauth/token", data=form)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_disabled_client_is_refused(http: httpx.Client, registry: ClientRegistry) -> None:
    client_id, secret = registry.create("leaver", "erp:read")
    token_for(http, client_id, secret)
    assert registry.disable(client_id) is True
    response = http.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_token_is_an_rfc9068_jwt_that_services_verify(
    http: httpx.Client, settings: Settings, bound_client: tuple[str, str]
) -> None:
    client_id, secret = bound_client
    token = token_for(http, client_id, secret)
    jwks = http.get("/.well-known/jwks.json").json()
    header, claims = _segment(token, 0), _segment(token, 1)
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "ES256"
    assert header["kid"] in {key["kid"] for key in jwks["keys"]}
    assert set(claims["aud"]) == {"graphql", "orders", "availability", "billing"}
    assert claims["sub"] == claims["client_id"] == client_id
    assert claims["customer_id"] == "CUST-A"
    assert claims["tier"] == "silver"
    assert claims["iss"] == settings.issuer
    assert claims["exp"] - claims["iat"] == 900
    assert claims["jti"]

    verifier = TokenVerifier(StaticKeys(jwks), issuer=settings.issuer, audience="orders")
    principal = asyncio.run(verifier.verify(token))
    assert principal.client_id == client_id
    assert principal.customer_id == "CUST-A"
    assert principal.scopes == frozenset({"orders:read", "orders:write", "portal"})
    assert principal.tier == "silver"

    other = TokenVerifier(StaticKeys(jwks), issuer=settings.issuer, audience="erp")
    with pytest.raises(InvalidToken):
        asyncio.run(other.verify(token))


def test_unbound_client_token_has_no_customer(http: httpx.Client, registry: ClientRegistry) -> None:
    client_id, secret = registry.create("ops", "erp:read", tier="internal")
    claims = _segment(token_for(http, client_id, secret), 1)
    assert "customer_id" not in claims
    assert claims["aud"] == ["erp"]
    assert claims["tier"] == "internal"


def test_granted_scope_is_requested_within_allowed(
    http: httpx.Client, registry: ClientRegistry
) -> None:
    client_id, secret = registry.create("narrow", "erp:read orders:read")
    response = http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "orders:read wms:read"},
        auth=(client_id, secret),
    )
    assert response.status_code == 200
    assert response.json()["scope"] == "orders:read"
    assert _segment(response.json()["access_token"], 1)["scope"] == "orders:read"


@pytest.mark.parametrize("scope", ["wms:write", "no-such-scope", "erp:read bogus"])
def test_scope_outside_allowed_or_unknown_is_invalid_scope(
    http: httpx.Client, registry: ClientRegistry, scope: str
) -> None:
    client_id, secret = registry.create("narrow", "erp:read")
    response = http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": scope},
        auth=(client_id, secret),
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"grant_type": "password"}, "unsupported_grant_type"),
        ({}, "invalid_request"),
        ("grant_type=client_credentials&scope=erp:read&scope=erp:read", "invalid_request"),
    ],
)
def test_malformed_token_requests(
    http: httpx.Client, bound_client: tuple[str, str], form: Any, error: str
) -> None:
    if isinstance(form, str):
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        response = http.post("/oauth/token", content=form, headers=headers, auth=bound_client)
    else:
        response = http.post("/oauth/token", data=form, auth=bound_client)
    assert response.status_code == 400
    assert response.json()["error"] == error


def test_json_body_is_invalid_request(http: httpx.Client, bound_client: tuple[str, str]) -> None:
    response = http.post(
        "/oauth/token", json={"grant_type": "client_credentials"}, auth=bound_client
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_jwks_holds_public_keys_only(http: httpx.Client) -> None:
    keys = http.get("/.well-known/jwks.json").json()["keys"]
    assert len(keys) == 1
    assert keys[0]["kty"] == "EC"
    assert keys[0]["crv"] == "P-256"
    assert keys[0]["alg"] == "ES256"
    assert "d" not in keys[0]


def test_authorization_server_metadata(http: httpx.Client, settings: Settings) -> None:
    meta = http.get("/.well-known/oauth-authorization-server").json()
    assert meta["issuer"] == settings.issuer
    assert meta["token_endpoint"] == f"{settings.issuer}/oauth/token"
    assert meta["jwks_uri"] == f"{settings.issuer}/.well-known/jwks.json"
    assert meta["grant_types_supported"] == ["client_credentials"]
    assert set(meta["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
    }
    assert "orders:read" in meta["scopes_supported"]


def test_signing_key_is_kept_private_and_reused(tmp_path: Path) -> None:
    first = KeyStore.in_data_dir(tmp_path)
    path = tmp_path / "keys" / "signing-keys.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    second = KeyStore.in_data_dir(tmp_path)
    assert first.active.kid == second.active.kid
    assert first.public_jwks() == second.public_jwks()


def test_plain_http_issuer_off_loopback_is_refused(tmp_path: Path) -> None:
    registry = ClientRegistry(f"sqlite:///{tmp_path / 'gateway.db'}")
    client_id, secret = registry.create("acme", "erp:read")
    server = TallyAuthorizationServer(
        registry, "http://gateway.internal:8000", KeyStore.in_data_dir(tmp_path)
    )
    form = f"grant_type=client_credentials&client_id={client_id}&client_secret={secret}"
    response = server.token_response(
        form.encode(), {"content-type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 400
    assert response.content["error"] == "insecure_transport"
