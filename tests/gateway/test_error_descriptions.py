"""Every refusal of /oauth/token, /oauth/introspect and /oauth/revoke says why in
``error_description`` (RFC 6749 §5.2), and no description tells an unknown client id
from a known one (decision 0023)."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx
import pytest
from joserfc.jwk import ECKey

from gateway.clients.registry import ClientRegistry
from gateway.oauth.assertion import ASSERTION_TYPE
from shared.settings import Settings
from tests.gateway.helpers import client_assertion

ENDPOINTS = ["/oauth/token", "/oauth/introspect", "/oauth/revoke"]
WRONG_SECRET = "the client id is unknown, the secret is wrong"


def _form(endpoint: str, **fields: str) -> dict[str, str]:
    base = {"grant_type": "client_credentials"} if endpoint == "/oauth/token" else {"token": "x"}
    return base | fields


def _refusal(response: httpx.Response, status: int = 401, error: str = "invalid_client") -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error, body
    description = body.get("error_description")
    assert isinstance(description, str), body
    assert description, body
    assert description != error, body  # a reason, not the code again
    # RFC 6749 §5.2: printable ASCII without '"' and '\\'
    assert all(" " <= c <= "~" and c not in '"\\' for c in description), description
    return description


@pytest.fixture(scope="module")
def secret_client(registry: ClientRegistry) -> tuple[str, str]:
    return registry.create("describer", "orders:read introspect", tier="internal")


@pytest.fixture(scope="module")
def disabled_client(registry: ClientRegistry) -> tuple[str, str]:
    client_id, secret = registry.create("leaver", "orders:read")
    registry.disable(client_id)
    return client_id, secret


@pytest.fixture(scope="module")
def key() -> ECKey:
    return ECKey.generate_key("P-256", parameters={"kid": "k-1"}, private=True)


@pytest.fixture(scope="module")
def key_client(registry: ClientRegistry, key: ECKey) -> str:
    jwks = json.dumps({"keys": [key.as_dict(private=False)]})
    return registry.create_with_keys("signer", "orders:read introspect", jwks, tier="internal")


# -- secrets: the same reason for an unknown id, a wrong secret, a disabled client ---------


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("placement", ["basic", "post"])
def test_unknown_id_wrong_secret_and_disabled_client_read_the_same(
    http: httpx.Client,
    secret_client: tuple[str, str],
    disabled_client: tuple[str, str],
    key_client: str,
    endpoint: str,
    placement: str,
) -> None:
    attempts = {
        "unknown client id": ("cli_nobody_here", "whatever-secret"),
        "known id, wrong secret": (secret_client[0], "wrong-secret"),
        "disabled client, right secret": disabled_client,
        "key client with a secret": (key_client, "any-secret"),
    }
    answers = {}
    for name, (client_id, secret) in attempts.items():
        if placement == "basic":
            response = http.post(endpoint, data=_form(endpoint), auth=(client_id, secret))
        else:
            fields = {"client_id": client_id, "client_secret": secret}
            response = http.post(endpoint, data=_form(endpoint, **fields))
        answers[name] = (_refusal(response), response.headers.get("www-authenticate"))
    assert len(set(answers.values())) == 1, answers
    assert WRONG_SECRET in answers["unknown client id"][0]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize(
    ("sent", "why"),
    [
        ({}, "No client authentication was sent"),
        ({"form": {"client_id": "cli_x"}}, "client_secret is missing"),
        (
            {"headers": {"Authorization": "Basic !!not-base64"}},
            "HTTP Basic credentials are malformed",
        ),
        ({"headers": {"Authorization": "Bearer abc"}}, "must be HTTP Basic"),
    ],
    ids=["nothing", "id without secret", "malformed basic", "bearer instead of basic"],
)
def test_missing_or_malformed_credentials_say_what_is_wrong(
    http: httpx.Client, endpoint: str, sent: dict[str, Any], why: str
) -> None:
    response = http.post(
        endpoint, data=_form(endpoint, **sent.get("form", {})), headers=sent.get("headers", {})
    )
    assert why in _refusal(response)


# -- assertions ------------------------------------------------------------------------------


def _assertion(client_id: str, key: Any, settings: Settings, **changes: Any) -> str:
    return client_assertion(client_id, key, settings, kid="k-1", lifetime=300, **changes)


def _with_assertion(endpoint: str, assertion: str, **fields: str) -> dict[str, str]:
    return _form(
        endpoint, client_assertion_type=ASSERTION_TYPE, client_assertion=assertion, **fields
    )


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("kid", ["k-1", None], ids=["with kid", "without kid"])
def test_an_assertion_for_an_unknown_client_reads_like_one_with_a_foreign_key(
    http: httpx.Client,
    settings: Settings,
    key_client: str,
    secret_client: tuple[str, str],
    endpoint: str,
    kid: str | None,
) -> None:
    """Before the signature verifies nothing about the client is told: an unknown id,
    a secret client, and a key client shown a key it does not hold read the same."""
    stranger = ECKey.generate_key("P-256", private=True)
    header = {"kid": "k-unknown" if kid else None}
    attempts = {
        "unknown client": _assertion("cli_nobody_here", stranger, settings, header=header),
        "secret client": _assertion(secret_client[0], stranger, settings, header=header),
        "key client, foreign key": _assertion(key_client, stranger, settings, header=header),
    }
    answers = {
        name: _refusal(http.post(endpoint, data=_with_assertion(endpoint, assertion)))
        for name, assertion in attempts.items()
    }
    assert len(set(answers.values())) == 1, answers
    expected = "is not registered for this client" if kid else "signature does not verify"
    assert expected in answers["unknown client"]


@pytest.mark.parametrize(
    ("case", "why"),
    [
        ("expired", "The assertion expired at"),
        ("wrong audience", "audience (aud) must name this server"),
        ("unknown key id", "key id (kid 'k-9') is not registered"),
        ("a kid with quotes and accents", "key id (kid 'k-xe') is not registered"),
        ("bad signature", "signature does not verify with the key 'k-1'"),
        ("issued in the future", "issued in the future"),
        ("not yet valid", "not valid before"),
        ("no exp", "no 'exp' claim"),
        ("exp not a number", "'exp' claim must be a NumericDate"),
        ("no sub", "no 'sub' claim"),
        ("alg none", "algorithm 'none' is not accepted"),
        ("not a JWT", "not a signed JWT"),
        ("wrong assertion type", "client_assertion_type must be"),
        ("no assertion", "client_assertion is missing"),
    ],
)
def test_each_refused_assertion_says_why(
    http: httpx.Client, settings: Settings, key_client: str, key: ECKey, case: str, why: str
) -> None:
    now = int(time.time())
    other = ECKey.generate_key("P-256", private=True)
    none_header = base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode()
    good = _assertion(key_client, key, settings)
    forms = {
        "expired": _with_assertion(
            "/oauth/token", _assertion(key_client, key, settings, iat=now - 900, exp=now - 600)
        ),
        "wrong audience": _with_assertion(
            "/oauth/token", _assertion(key_client, key, settings, aud="https://elsewhere")
        ),
        "unknown key id": _with_assertion(
            "/oauth/token", _assertion(key_client, key, settings, header={"kid": "k-9"})
        ),
        "a kid with quotes and accents": _with_assertion(
            "/oauth/token", _assertion(key_client, key, settings, header={"kid": 'k-"\\\xe9x\\e'})
        ),
        "bad signature": _with_assertion("/oauth/token", _assertion(key_client, other, settings)),
        "issued in the future": _with_assertion(
            "/oauth/token", _assertion(key_client, key, settings, iat=now + 600, exp=now + 900)
        ),
        "not yet valid": _with_assertion(
            "/oauth/token", _assertion(key_client, key, settings, nbf=now + 600)
        ),
        "no exp": _with_assertion("/oauth/token", _assertion(key_client, key, settings, exp=None)),
        "exp not a number": _with_assertion(
            "/oauth/token", _assertion(key_client, key, settings, exp="tomorrow")
        ),
        "no sub": _with_assertion("/oauth/token", _assertion(key_client, key, settings, sub=None)),
        "alg none": _with_assertion("/oauth/token", f"{none_header}.{good.split('.')[1]}."),
        "not a JWT": _with_assertion("/oauth/token", "not-a-jwt"),
        "wrong assertion type": _form(
            "/oauth/token", client_assertion_type="urn:x", client_assertion=good
        ),
        "no assertion": _form("/oauth/token", client_assertion_type=ASSERTION_TYPE),
    }
    assert why in _refusal(http.post("/oauth/token", data=forms[case]))


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_replayed_jti_is_refused_at_every_endpoint_saying_so(
    http: httpx.Client, settings: Settings, key_client: str, key: ECKey, endpoint: str
) -> None:
    assertion = _assertion(key_client, key, settings)
    first = http.post(endpoint, data=_with_assertion(endpoint, assertion))
    assert first.status_code == 200, first.text
    replay = http.post(endpoint, data=_with_assertion(endpoint, assertion))
    assert "jti was used before" in _refusal(replay)


# -- the grant itself ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("form", "status", "error", "why"),
    [
        ({"grant_type": "password"}, 400, "unsupported_grant_type", "Only grant_type="),
        ({"grant_type": "authorization_code", "code": "x"}, 400, "unsupported_grant_type", "Only"),
        ({"scope": "orders:launch"}, 400, "invalid_scope", "Unknown scopes: orders:launch"),
        ({"scope": "erp:write"}, 400, "invalid_scope", "(erp:write) is granted to this client"),
    ],
    ids=["password grant", "code grant", "unknown scope", "scope not granted"],
)
def test_grant_and_scope_refusals_say_why(
    http: httpx.Client,
    secret_client: tuple[str, str],
    form: dict[str, str],
    status: int,
    error: str,
    why: str,
) -> None:
    body = {"grant_type": "client_credentials"} | form
    response = http.post("/oauth/token", data=body, auth=secret_client)
    assert why in _refusal(response, status, error)


def test_revoking_another_kind_of_token_says_why(
    http: httpx.Client, secret_client: tuple[str, str]
) -> None:
    form = {"token": "x", "token_type_hint": "refresh_token"}
    response = http.post("/oauth/revoke", data=form, auth=secret_client)
    assert "Only access tokens" in _refusal(response, 400, "unsupported_token_type")
