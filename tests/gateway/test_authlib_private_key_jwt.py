"""private_key_jwt as partners really do it: Authlib's own OAuth 2 client with its
defaults (assertions valid for an hour, RS256, no kid, ``aud`` = the URL it calls)
against a running gateway whose issuer is the URL it serves, for the token,
introspection and revocation endpoints (decision 0023)."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from gateway.app import create_app
from gateway.clients.registry import ClientRegistry
from gateway.oauth.assertion import ASSERTION_TYPE, LEEWAY_SECONDS, MAX_ASSERTION_LIFETIME_SECONDS
from gateway.oauth.token_store import RETAIN_AFTER_EXP_SECONDS, TokenStore
from shared.settings import Settings
from tests.gateway.helpers import gateway_settings
from tests.gateway.upstreams import Upstream
from tests.support.ports import free_port
from tests.support.stack import ThreadServer

HOUR = 3600


@dataclass(frozen=True)
class PinnedGateway:
    """A gateway whose issuer is the URL it serves, as in production."""

    url: str
    registry: ClientRegistry
    settings: Settings

    def endpoint(self, name: str) -> str:
        return f"{self.url}/oauth/{name}"


@pytest.fixture(scope="module")
def pinned(
    tmp_path_factory: pytest.TempPathFactory, upstream: tuple[Upstream, str]
) -> Iterator[PinnedGateway]:
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    data_dir: Path = tmp_path_factory.mktemp("authlib-gateway")
    settings = msgspec.structs.replace(gateway_settings(data_dir, upstream[1]), issuer=issuer)
    registry = ClientRegistry(settings.database_url)
    with ThreadServer(create_app(settings), port):
        yield PinnedGateway(issuer, registry, settings)
    registry.close()


@dataclass(frozen=True)
class KeyClient:
    client_id: str
    key: RSAKey


@pytest.fixture(scope="module")
def rsa_client(pinned: PinnedGateway) -> KeyClient:
    """A resource server's client (it may introspect) holding an RSA key, no kid."""
    key = RSAKey.generate_key(2048, private=True)
    jwks = json.dumps({"keys": [key.as_dict(private=False)]})
    client_id = pinned.registry.create_with_keys(
        "authlib partner", "orders:read introspect", jwks, tier="silver"
    )
    return KeyClient(client_id, key)


def _authlib(client: KeyClient, auth: PrivateKeyJWT | None = None) -> AsyncOAuth2Client:
    oauth = AsyncOAuth2Client(
        client.client_id,
        client.key,
        token_endpoint_auth_method="private_key_jwt",
        revocation_endpoint_auth_method="private_key_jwt",
        timeout=20,
    )
    oauth.register_client_auth_method(auth or PrivateKeyJWT())  # defaults: aud = the URL called
    return oauth


def _claims(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


class Recorder:
    """Keeps every client assertion Authlib sends (an httpx event hook)."""

    def __init__(self) -> None:
        self.assertions: list[str] = []

    async def __call__(self, request: httpx.Request) -> None:
        form = dict(httpx.QueryParams(request.content.decode()))
        if "client_assertion" in form:
            self.assertions.append(form["client_assertion"])


async def test_authlib_defaults_get_introspect_and_revoke_a_token(
    pinned: PinnedGateway, rsa_client: KeyClient
) -> None:
    recorder = Recorder()
    async with _authlib(rsa_client) as oauth:
        oauth.event_hooks["request"].append(recorder)
        token = await oauth.fetch_token(pinned.endpoint("token"), grant_type="client_credentials")
        access = token["access_token"]
        assert _claims(access)["client_id"] == rsa_client.client_id

        introspected = await oauth.introspect_token(pinned.endpoint("introspect"), token=access)
        assert introspected.status_code == 200, introspected.text
        assert introspected.json()["active"] is True
        assert introspected.json()["client_id"] == rsa_client.client_id

        revoked = await oauth.revoke_token(pinned.endpoint("revoke"), token=access)
        assert revoked.status_code == 200, revoked.text
        after = await oauth.introspect_token(pinned.endpoint("introspect"), token=access)
        assert after.json() == {"active": False}

    # what Authlib sent: hour-long assertions naming the endpoint each one was for
    sent = [_claims(assertion) for assertion in recorder.assertions]
    assert [claims["aud"] for claims in sent] == [
        pinned.endpoint(name) for name in ("token", "introspect", "revoke", "introspect")
    ]
    assert all(claims["exp"] - claims["iat"] == HOUR for claims in sent)


async def test_authlib_with_an_ec_key_named_by_kid_and_the_token_endpoint_pinned(
    pinned: PinnedGateway,
) -> None:
    key = ECKey.generate_key("P-256", parameters={"kid": "edi-2026"}, private=True)
    jwks = json.dumps({"keys": [key.as_dict(private=False)]})
    client_id = pinned.registry.create_with_keys("edi partner", "orders:read", jwks)
    auth = PrivateKeyJWT(
        token_endpoint=pinned.endpoint("token"), alg="ES256", headers={"kid": "edi-2026"}
    )
    oauth = AsyncOAuth2Client(
        client_id,
        key,
        token_endpoint_auth_method="private_key_jwt",
        revocation_endpoint_auth_method="private_key_jwt",
        timeout=20,
    )
    oauth.register_client_auth_method(auth)
    async with oauth:
        token = await oauth.fetch_token(pinned.endpoint("token"), grant_type="client_credentials")
        # the pinned token endpoint is an accepted audience at the revocation endpoint too
        revoked = await oauth.revoke_token(pinned.endpoint("revoke"), token=token["access_token"])
    assert revoked.status_code == 200, revoked.text


async def test_a_replayed_authlib_assertion_is_refused_for_its_whole_life(
    pinned: PinnedGateway, rsa_client: KeyClient
) -> None:
    recorder = Recorder()
    async with _authlib(rsa_client) as oauth:
        oauth.event_hooks["request"].append(recorder)
        await oauth.fetch_token(pinned.endpoint("token"), grant_type="client_credentials")
    (assertion,) = recorder.assertions
    assert _claims(assertion)["exp"] - time.time() > HOUR - 60  # still valid for an hour
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
    }
    with httpx.Client(timeout=20) as http:
        for endpoint in ("token", "introspect", "revoke"):
            replay = http.post(pinned.endpoint(endpoint), data=form | {"token": "x"})
            assert replay.status_code == 401, (endpoint, replay.text)
            assert replay.json() == {
                "error": "invalid_client",
                "error_description": "The assertion's jti was used before: "
                "sign a new assertion for every request.",
            }


def _signed(client: KeyClient, aud: str, lifetime: int, **claims: Any) -> str:
    now = int(time.time())
    payload = {
        "iss": client.client_id,
        "sub": client.client_id,
        "aud": aud,
        "iat": now,
        "exp": now + lifetime,
        "jti": uuid.uuid4().hex,
    } | claims
    return jwt.encode({"alg": "RS256"}, payload, client.key)


@pytest.mark.parametrize(
    ("lifetime", "endpoint", "aud_of", "why"),
    [
        (HOUR + 120, "token", "token", "more than 3600 s ahead"),
        (300, "token", "introspect", "audience (aud) must name this server"),
        (300, "introspect", "revoke", "audience (aud) must name this server"),
    ],
    ids=[
        "an hour and two minutes",
        "introspection audience at the token endpoint",
        "revocation audience at the introspection endpoint",
    ],
)
def test_assertions_beyond_the_bounds_are_refused_saying_why(
    pinned: PinnedGateway,
    rsa_client: KeyClient,
    lifetime: int,
    endpoint: str,
    aud_of: str,
    why: str,
) -> None:
    assertion = _signed(rsa_client, pinned.endpoint(aud_of), lifetime)
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
        "token": "x",
    }
    with httpx.Client(timeout=20) as http:
        response = http.post(pinned.endpoint(endpoint), data=form)
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_client"
    assert why in response.json()["error_description"]


@pytest.mark.parametrize("aud", ["issuer", "token endpoint"])
def test_the_issuer_and_the_token_endpoint_are_accepted_at_every_endpoint(
    pinned: PinnedGateway, rsa_client: KeyClient, aud: str
) -> None:
    audience = pinned.url if aud == "issuer" else pinned.endpoint("token")
    with httpx.Client(timeout=20) as http:
        for endpoint in ("token", "introspect", "revoke"):
            form = {
                "grant_type": "client_credentials",
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": _signed(rsa_client, audience, HOUR),
                "token": "x",
            }
            response = http.post(pinned.endpoint(endpoint), data=form)
            assert response.status_code == 200, (endpoint, response.text)


async def test_authlib_reports_a_refusal_as_an_oauth_error(
    pinned: PinnedGateway, rsa_client: KeyClient
) -> None:
    """A key the gateway does not hold: Authlib raises the gateway's reason."""
    stranger = KeyClient(rsa_client.client_id, RSAKey.generate_key(2048, private=True))
    async with _authlib(stranger) as oauth:
        with pytest.raises(OAuthError) as refused:
            await oauth.fetch_token(pinned.endpoint("token"), grant_type="client_credentials")
    assert refused.value.error == "invalid_client"
    assert "signature does not verify" in str(refused.value.description)


def test_a_replay_at_another_replica_is_refused(
    pinned: PinnedGateway, rsa_client: KeyClient
) -> None:
    """Replicas share the gateway's database, and so the assertion ids already used."""
    assertion = _signed(rsa_client, pinned.endpoint("token"), HOUR)
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
    }
    with ThreadServer(create_app(pinned.settings)) as replica, httpx.Client(timeout=20) as http:
        assert http.post(pinned.endpoint("token"), data=form).status_code == 200
        replay = http.post(f"{replica.url}/oauth/token", data=form)
    assert replay.status_code == 401, replay.text
    assert "jti was used before" in replay.json()["error_description"]


def test_a_jti_is_remembered_while_its_assertion_could_still_be_accepted(
    pinned: PinnedGateway,
) -> None:
    store = TokenStore(pinned.registry.engine)
    now = int(time.time())
    assert RETAIN_AFTER_EXP_SECONDS > LEEWAY_SECONDS  # pruned only once refused as expired
    in_leeway, hour_long = now - LEEWAY_SECONDS + 5, now + MAX_ASSERTION_LIFETIME_SECONDS
    assert store.use_assertion_jti("cli_prune", "in-leeway", in_leeway)
    assert store.use_assertion_jti("cli_prune", "hour-long", hour_long)
    store.prune()
    assert not store.use_assertion_jti("cli_prune", "in-leeway", in_leeway)
    assert not store.use_assertion_jti("cli_prune", "hour-long", hour_long)
