"""The authorization server: client authentication, scopes, RFC 9068 tokens, keys."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import stat
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey

from gateway.clients.registry import ClientRegistry
from gateway.oauth.keys import KeyStore
from gateway.oauth.server import TallyAuthorizationServer
from shared.auth.revocation import RevocationList
from shared.auth.verifier import AudienceNotGranted, InvalidToken, StaticKeys, TokenVerifier
from shared.settings import Settings
from tests.gateway.helpers import token_for


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
        "private_key_jwt",
    }
    assert "none" not in meta["token_endpoint_auth_signing_alg_values_supported"]
    assert meta["introspection_endpoint"] == f"{settings.issuer}/oauth/introspect"
    assert meta["revocation_endpoint"] == f"{settings.issuer}/oauth/revoke"
    assert meta["access_token_signing_alg_values_supported"] == ["ES256"]
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


# -- refused tokens: each one a 401 problem+json at the gateway, nothing forwarded ------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(settings: Settings, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": settings.issuer,
        "sub": "cli_forged",
        "client_id": "cli_forged",
        "aud": ["erp"],
        "scope": "erp:read erp:write",
        "iat": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
    }
    claims.update(changes)
    return {name: value for name, value in claims.items() if value is not None}


def _signed(data_dir: Path, claims: dict[str, Any], **header: Any) -> str:
    """Signed with the gateway's real key: only the claims or header are wrong."""
    key = KeyStore.in_data_dir(data_dir).active
    full = {"alg": "ES256", "kid": key.kid, "typ": "at+jwt"} | header
    return jwt.encode({k: v for k, v in full.items() if v is not None}, claims, key)


def _unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    head = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())
    return head + "." + _b64(signature)


def _bad_tokens(data_dir: Path, settings: Settings, good: str) -> dict[str, str]:
    store = KeyStore.in_data_dir(data_dir)
    kid = store.active.kid
    good_claims = _claims(settings)
    public_pem = store.active.as_pem(private=False)
    header = {"alg": "HS256", "kid": kid, "typ": "at+jwt"}
    signing_input = _unsigned(header, good_claims).rsplit(".", 1)[0].encode()
    hs256 = hmac.new(public_pem, signing_input, hashlib.sha256).digest()
    stranger = ECKey.generate_key("P-256", parameters={"kid": "stranger"}, private=True)
    stranger_as_ours = ECKey.generate_key("P-256", parameters={"kid": kid}, private=True)
    head, _, signature = good.split(".")
    claims = _segment(good, 1) | {"scope": "admin"}
    now = int(time.time())
    return {
        "alg none": _unsigned({"alg": "none", "kid": kid, "typ": "at+jwt"}, good_claims),
        "HS256 keyed with the public key": _unsigned(header, good_claims, hs256),
        "unknown kid": jwt.encode(
            {"alg": "ES256", "kid": "stranger", "typ": "at+jwt"}, good_claims, stranger
        ),
        "our kid, another key": jwt.encode(
            {"alg": "ES256", "kid": kid, "typ": "at+jwt"}, good_claims, stranger_as_ours
        ),
        "no kid": _signed(data_dir, good_claims, kid=None),
        "expired": _signed(data_dir, _claims(settings, iat=now - 1000, exp=now - 300)),
        "not yet valid": _signed(data_dir, _claims(settings, nbf=now + 300)),
        "issued in the future": _signed(data_dir, _claims(settings, iat=now + 300)),
        "wrong issuer": _signed(data_dir, _claims(settings, iss="https://evil.example")),
        "no audience": _signed(data_dir, _claims(settings, aud=None)),
        "expired, and for another API": _signed(
            data_dir, _claims(settings, aud=["billing"], iat=now - 1000, exp=now - 300)
        ),
        "no jti": _signed(data_dir, _claims(settings, jti=None)),
        "not an access token (typ JWT)": _signed(data_dir, good_claims, typ="JWT"),
        "tampered payload": f"{head}.{_b64(json.dumps(claims).encode())}.{signature}",
        "garbage": "not.a.token",
    }


def test_refused_tokens_are_401_problems_and_nothing_is_forwarded(
    http: httpx.Client,
    data_dir: Path,
    settings: Settings,
    registry: ClientRegistry,
    upstream: tuple[Any, str],
) -> None:
    client_id, secret = registry.create("prober", "erp:read")
    good = token_for(http, client_id, secret)
    assert http.get("/erp/v1/items/A", headers={"Authorization": f"Bearer {good}"}).is_success
    service = upstream[0]
    before = len(service.calls)
    for name, token in _bad_tokens(data_dir, settings, good).items():
        response = http.get("/erp/v1/items/A", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, name
        assert response.headers["content-type"] == "application/problem+json", name
        assert response.json()["type"] == "/problems/unauthorized", name
        assert 'error="invalid_token"' in response.headers["www-authenticate"], name
    assert len(service.calls) == before  # the service saw none of them


def test_refused_tokens_fail_every_verifier(
    http: httpx.Client, data_dir: Path, settings: Settings, registry: ClientRegistry
) -> None:
    """The same checks in the verifier every service runs (keys from the JWKS)."""
    client_id, secret = registry.create("prober", "erp:read")
    good = token_for(http, client_id, secret)
    jwks = http.get("/.well-known/jwks.json").json()
    verifier = TokenVerifier(StaticKeys(jwks), issuer=settings.issuer, audience="erp")
    assert asyncio.run(verifier.verify(good)).client_id == client_id
    for name, token in _bad_tokens(data_dir, settings, good).items():
        with pytest.raises(InvalidToken) as refused:  # noqa: PT012 (name the case that passed)
            asyncio.run(verifier.verify(token))
            pytest.fail(f"{name} was accepted")
        assert not isinstance(refused.value, AudienceNotGranted), name  # a bad token: 401


# -- a good token for another API: 403 insufficient_scope, not 401 (decision 0023) --------


def test_a_good_token_for_another_api_is_403_insufficient_scope_and_nothing_is_forwarded(
    http: httpx.Client, data_dir: Path, settings: Settings, upstream: tuple[Any, str]
) -> None:
    service = upstream[0]
    before = len(service.calls)
    for_billing = _signed(data_dir, _claims(settings, aud=["billing"]))
    response = http.get("/erp/v1/items/A", headers={"Authorization": f"Bearer {for_billing}"})
    assert response.status_code == 403, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "/problems/insufficient-scope"
    assert "not issued for the erp API" in response.json()["detail"]
    assert response.headers["www-authenticate"].startswith('Bearer error="insufficient_scope"')
    assert len(service.calls) == before


def test_the_verifier_tells_a_missing_grant_from_a_bad_token(
    http: httpx.Client, data_dir: Path, settings: Settings
) -> None:
    jwks = http.get("/.well-known/jwks.json").json()
    revocations = RevocationList()
    verifier = TokenVerifier(
        StaticKeys(jwks), issuer=settings.issuer, audience="erp", revocations=revocations
    )
    for_billing = _claims(settings, aud="billing")  # one string is an audience too
    with pytest.raises(AudienceNotGranted, match="its audience: billing"):
        asyncio.run(verifier.verify(_signed(data_dir, for_billing)))
    # revoked and for another API: the token is bad, whatever it was for
    revoked = _claims(settings, aud=["billing"])
    revocations.add(revoked["jti"], revoked["exp"])
    with pytest.raises(InvalidToken, match="revoked") as refused:
        asyncio.run(verifier.verify(_signed(data_dir, revoked)))
    assert not isinstance(refused.value, AudienceNotGranted)


def test_token_lifetime_is_configurable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TALLY_TOKEN_LIFETIME_SECONDS", "120")
    registry = ClientRegistry(f"sqlite:///{tmp_path / 'gateway.db'}")
    client_id, secret = registry.create("short", "erp:read")
    server = TallyAuthorizationServer(
        registry, "http://127.0.0.1:8000", KeyStore.in_data_dir(tmp_path)
    )
    form = f"grant_type=client_credentials&client_id={client_id}&client_secret={secret}"
    response = server.token_response(
        form.encode(), {"content-type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 200
    assert response.content["expires_in"] == 120
    claims = _segment(response.content["access_token"], 1)
    assert claims["exp"] - claims["iat"] == 120
    monkeypatch.setenv("TALLY_TOKEN_LIFETIME_SECONDS", "5")
    with pytest.raises(ValueError, match=r"60\.\.86400"):
        TallyAuthorizationServer(registry, "http://127.0.0.1:8000", KeyStore.in_data_dir(tmp_path))
