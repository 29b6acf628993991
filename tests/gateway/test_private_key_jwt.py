"""private_key_jwt client authentication (RFC 7523): a client proves itself with a JWT
signed by its own key; the gateway holds only the public half."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc.jwk import ECKey, OctKey, RSAKey
from typer.testing import CliRunner

from gateway.clients.registry import ClientRegistry
from shared.settings import Settings
from tally.commands.clients import clients_app
from tests.gateway.helpers import client_assertion

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
runner = CliRunner()


@pytest.fixture(scope="module")
def client_key() -> ECKey:
    return ECKey.generate_key("P-256", parameters={"kid": "partner-1"}, private=True)


@pytest.fixture(scope="module")
def key_client(registry: ClientRegistry, client_key: ECKey) -> str:
    jwks = json.dumps({"keys": [client_key.as_dict(private=False)]})
    return registry.create_with_keys("edi partner", "orders:read", jwks, tier="silver")


def _assertion(client_id: str, key: Any, settings: Settings, **changes: Any) -> str:
    return client_assertion(client_id, key, settings, kid="partner-1", lifetime=60, **changes)


def _token_request(http: httpx.Client, assertion: str, **extra: str) -> httpx.Response:
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
    } | extra
    return http.post("/oauth/token", data=form)


def _claims(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


def test_a_signed_assertion_gets_a_token(
    http: httpx.Client, key_client: str, client_key: ECKey, settings: Settings
) -> None:
    response = _token_request(http, _assertion(key_client, client_key, settings))
    assert response.status_code == 200, response.text
    claims = _claims(response.json()["access_token"])
    assert claims["sub"] == claims["client_id"] == key_client
    assert claims["scope"] == "orders:read"
    assert claims["tier"] == "silver"


def test_the_issuer_is_an_accepted_audience_too(
    http: httpx.Client, key_client: str, client_key: ECKey, settings: Settings
) -> None:
    assertion = _assertion(key_client, client_key, settings, aud=settings.issuer)
    assert _token_request(http, assertion).status_code == 200


def test_a_replayed_assertion_is_refused(
    http: httpx.Client, key_client: str, client_key: ECKey, settings: Settings
) -> None:
    assertion = _assertion(key_client, client_key, settings)
    assert _token_request(http, assertion).status_code == 200
    replay = _token_request(http, assertion)
    assert replay.status_code == 401
    assert replay.json()["error"] == "invalid_client"
    # the refusal changed nothing: a fresh assertion still works
    assert _token_request(http, _assertion(key_client, client_key, settings)).status_code == 200


def _hs256_with_public_key(client_id: str, key: ECKey, settings: Settings) -> str:
    header = {"alg": "HS256", "kid": "partner-1"}
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": f"{settings.issuer}/oauth/token",
              "exp": now + 60, "jti": uuid.uuid4().hex}  # fmt: skip
    encode = lambda data: base64.urlsafe_b64encode(data).rstrip(b"=").decode()  # noqa: E731
    signing_input = f"{encode(json.dumps(header).encode())}.{encode(json.dumps(claims).encode())}"
    mac = hmac.new(key.as_pem(private=False), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{encode(mac)}"


@pytest.mark.parametrize(
    ("case", "why"),
    [
        ("wrong audience", "audience (aud) must name this server"),
        ("expired", "The assertion expired at"),
        ("iss is not sub", "'iss' and 'sub' must both be the client id"),
        ("another key", "signature does not verify with the key 'partner-1'"),
        ("alg none", "algorithm 'none' is not accepted"),
        ("HS256 keyed with the public key", "algorithm 'HS256' is not accepted"),
        ("no jti", "needs a unique 'jti'"),
        ("lives for a day", "more than 3600 s ahead"),
        ("unknown client", "key id (kid 'partner-1') is not registered for this client"),
    ],
)
def test_bad_assertions_are_401_invalid_client_saying_why(
    http: httpx.Client, key_client: str, client_key: ECKey, settings: Settings, case: str, why: str
) -> None:
    now = int(time.time())
    other = ECKey.generate_key("P-256", parameters={"kid": "partner-1"}, private=True)
    assertions = {
        "wrong audience": lambda: _assertion(key_client, client_key, settings, aud="https://x"),
        "expired": lambda: _assertion(
            key_client, client_key, settings, iat=now - 600, exp=now - 300
        ),
        "iss is not sub": lambda: _assertion(key_client, client_key, settings, iss="cli_other"),
        "another key": lambda: _assertion(key_client, other, settings),
        "alg none": lambda: _none_assertion(key_client, settings),
        "HS256 keyed with the public key": lambda: _hs256_with_public_key(
            key_client, client_key, settings
        ),
        "no jti": lambda: _assertion(key_client, client_key, settings, jti=None),
        "lives for a day": lambda: _assertion(key_client, client_key, settings, exp=now + 86_400),
        "unknown client": lambda: _assertion("cli_nobody", client_key, settings),
    }
    response = _token_request(http, assertions[case]())
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_client"
    assert why in response.json()["error_description"]


def _none_assertion(client_id: str, settings: Settings) -> str:
    encode = lambda data: base64.urlsafe_b64encode(data).rstrip(b"=").decode()  # noqa: E731
    claims = {"iss": client_id, "sub": client_id, "aud": f"{settings.issuer}/oauth/token",
              "exp": int(time.time()) + 60, "jti": uuid.uuid4().hex}  # fmt: skip
    header = encode(json.dumps({"alg": "none"}).encode())
    return f"{header}.{encode(json.dumps(claims).encode())}."


def test_a_key_client_cannot_use_a_secret_and_a_secret_client_cannot_use_a_key(
    http: httpx.Client,
    registry: ClientRegistry,
    key_client: str,
    client_key: ECKey,
    settings: Settings,
) -> None:
    refused = http.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=(key_client, "guess")
    )
    assert refused.status_code == 401
    secret_client, _ = registry.create("secret holder", "orders:read")
    assertion = _assertion(secret_client, client_key, settings)
    assert _token_request(http, assertion).status_code == 401


def test_a_disabled_key_client_is_refused(
    http: httpx.Client, registry: ClientRegistry, client_key: ECKey, settings: Settings
) -> None:
    jwks = json.dumps(client_key.as_dict(private=False))  # a single JWK is accepted too
    client_id = registry.create_with_keys("leaver", "orders:read", jwks)
    assert _token_request(http, _assertion(client_id, client_key, settings)).status_code == 200
    registry.disable(client_id)
    assert _token_request(http, _assertion(client_id, client_key, settings)).status_code == 401


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        (lambda k: json.dumps({"keys": [k.as_dict(private=True)]}), "private"),
        (lambda k: json.dumps(OctKey.generate_key(256).as_dict()), "public keys"),
        (lambda k: k.as_pem(private=True).decode(), "private key"),
        (lambda k: "{}", "JWKS"),
        (lambda k: json.dumps({"keys": []}), "no key"),
        (lambda k: "not json", "JWKS"),
    ],
)
def test_registration_refuses_anything_but_public_keys(
    tmp_path: Path, client_key: ECKey, keys: Any, message: str
) -> None:
    registry = ClientRegistry(f"sqlite:///{tmp_path / 'gateway.db'}")
    with pytest.raises(ValueError, match=message):
        registry.create_with_keys("x", "orders:read", keys(client_key))
    assert registry.list() == []


def test_cli_registers_a_jwks_or_a_pem_public_key(
    http: httpx.Client, data_dir: Path, client_key: ECKey, settings: Settings, tmp_path: Path
) -> None:
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps({"keys": [client_key.as_dict(private=False)]}))
    created = runner.invoke(
        clients_app,
        ["create", "--name", "edi", "--scopes", "orders:read", "--jwks", str(jwks_file),
         "--json", "--data-dir", str(data_dir)],
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    body = json.loads(created.stdout)
    assert body["auth_method"] == "private_key_jwt"
    assert "client_secret" not in body
    response = _token_request(http, _assertion(body["client_id"], client_key, settings))
    assert response.status_code == 200

    rsa = RSAKey.generate_key(2048, private=True)
    pem_file = tmp_path / "public.pem"
    pem_file.write_bytes(rsa.as_pem(private=False))
    created = runner.invoke(
        clients_app,
        ["create", "--name", "erp bridge", "--scopes", "erp:read", "--public-key",
         str(pem_file), "--json", "--data-dir", str(data_dir)],
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    client_id = json.loads(created.stdout)["client_id"]
    assertion = _assertion(client_id, rsa, settings, header={"alg": "RS256", "kid": None})
    assert _token_request(http, assertion).status_code == 200

    listed = runner.invoke(clients_app, ["list", "--json", "--data-dir", str(data_dir)])
    rows = {row["client_id"]: row for row in json.loads(listed.stdout)["items"]}
    assert rows[client_id]["auth_method"] == "private_key_jwt"

    private = tmp_path / "private.pem"
    private.write_bytes(rsa.as_pem(private=True))
    refused = runner.invoke(
        clients_app,
        ["create", "--name", "oops", "--scopes", "erp:read", "--public-key", str(private),
         "--data-dir", str(data_dir)],
    )  # fmt: skip
    assert refused.exit_code == 2
    assert "private key" in refused.output
