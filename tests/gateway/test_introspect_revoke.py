"""RFC 7662 introspection, RFC 7009 revocation, and revocation reaching every verifier:
the gateway at once, a real service (the ERP API, keys and revocations fetched from
the gateway over HTTP) within its poll."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from gateway.clients.registry import ClientRegistry
from gateway.oauth.keys import KeyStore
from shared.auth.revocation import RevocationList, RevocationPage, RevocationPoller, RevokedToken
from shared.auth.verifier import InvalidToken, StaticKeys, TokenVerifier
from shared.settings import Settings, load_settings
from system_apis.erp.app import create_app as create_erp
from tests.gateway.helpers import serve, token_for
from tests.support.polling import wait_until


@pytest.fixture(scope="module")
def erp_url(gateway_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The ERP service wired as in production: JWKS and revocation list from the gateway."""
    settings = load_settings("erp", data_dir=tmp_path_factory.mktemp("erp"))
    urls = dict(settings.service_urls) | {"gateway": gateway_url}
    settings = msgspec.structs.replace(
        settings, service_urls=urls, jwks_url=f"{gateway_url}/.well-known/jwks.json"
    )
    with serve(create_erp(settings)) as url:
        yield url


@pytest.fixture(scope="module")
def resource_server(registry: ClientRegistry) -> tuple[str, str]:
    return registry.create("resource server", "erp:read", tier="internal")


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _introspect(http: httpx.Client, auth: tuple[str, str], token: str) -> httpx.Response:
    return http.post("/oauth/introspect", data={"token": token}, auth=auth)


def _revoke(http: httpx.Client, auth: tuple[str, str], token: str, **extra: str) -> httpx.Response:
    return http.post("/oauth/revoke", data={"token": token} | extra, auth=auth)


def _claims(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


def _assert_unauthorized(response: httpx.Response, detail: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "/problems/unauthorized"
    assert detail in response.json()["detail"]


# -- introspection ----------------------------------------------------------------------


def test_introspection_shows_an_active_tokens_claims(
    http: httpx.Client,
    registry: ClientRegistry,
    resource_server: tuple[str, str],
    settings: Settings,
) -> None:
    client_id, secret = registry.create("acme", "orders:read", customer_id="CUST-A", tier="gold")
    token = token_for(http, client_id, secret)
    response = _introspect(http, resource_server, token)
    assert response.status_code == 200
    body = response.json()
    assert body["active"] is True
    assert body["client_id"] == body["sub"] == client_id
    assert body["scope"] == "orders:read"
    assert body["customer_id"] == "CUST-A"
    assert body["tier"] == "gold"
    assert body["iss"] == settings.issuer
    assert body["aud"] == ["orders"]
    assert body["jti"] == _claims(token)["jti"]
    assert body["exp"] - body["iat"] == 900
    assert response.headers["cache-control"] == "no-store"


def test_only_resource_servers_may_introspect(
    http: httpx.Client, registry: ClientRegistry, resource_server: tuple[str, str]
) -> None:
    partner = registry.create("partner", "orders:read")
    token = token_for(http, *partner)
    refused = _introspect(http, partner, token)
    assert refused.status_code == 403
    assert refused.json()["error"] == "unauthorized_client"
    wrong_secret = _introspect(http, (resource_server[0], "wrong"), token)
    assert wrong_secret.status_code == 401
    assert wrong_secret.json()["error"] == "invalid_client"
    anonymous = http.post("/oauth/introspect", data={"token": token})
    assert anonymous.status_code == 401
    assert _introspect(http, resource_server, token).json()["active"] is True


def test_introspection_says_inactive_for_expired_tampered_and_unknown_tokens(
    http: httpx.Client, data_dir: Path, settings: Settings, resource_server: tuple[str, str]
) -> None:
    key = KeyStore.in_data_dir(data_dir).active
    now = int(time.time())
    from joserfc import jwt

    expired = jwt.encode(
        {"alg": "ES256", "kid": key.kid, "typ": "at+jwt"},
        {"iss": settings.issuer, "sub": "c", "client_id": "c", "aud": ["erp"], "scope": "erp:read",
         "iat": now - 1000, "exp": now - 300, "jti": "expired-1"},
        key,
    )  # fmt: skip
    good = token_for(http, *resource_server)
    head, _, signature = good.split(".")
    forged = base64.urlsafe_b64encode(
        json.dumps(_claims(good) | {"scope": "admin"}).encode()
    ).rstrip(b"=")
    tampered = f"{head}.{forged.decode()}.{signature}"
    for token in (expired, tampered, "not-a-token", good[:-4] + "AAAA"):
        response = _introspect(http, resource_server, token)
        assert response.status_code == 200
        assert response.json() == {"active": False}


def test_introspection_of_a_refresh_token_is_unsupported(
    http: httpx.Client, resource_server: tuple[str, str]
) -> None:
    response = http.post(
        "/oauth/introspect",
        data={"token": "x", "token_type_hint": "refresh_token"},
        auth=resource_server,
    )
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_token_type"


# -- revocation -------------------------------------------------------------------------


def test_a_revoked_token_is_refused_by_the_gateway_and_by_a_service(
    http: httpx.Client,
    registry: ClientRegistry,
    resource_server: tuple[str, str],
    erp_url: str,
    upstream: tuple[Any, str],
) -> None:
    client = registry.create("erp reader", "erp:read")
    token = token_for(http, *client)
    with httpx.Client(base_url=erp_url, timeout=20) as erp:
        # accepted first (and now in both verified-token caches)
        assert erp.get("/erp/v1/items/NOPE", headers=_bearer(token)).status_code == 404
        assert http.get("/erp/v1/items/A", headers=_bearer(token)).status_code == 200
        calls = len(upstream[0].calls)

        revoked = _revoke(http, client, token, token_type_hint="access_token")
        assert revoked.status_code == 200
        assert revoked.json() == {}

        _assert_unauthorized(http.get("/erp/v1/items/A", headers=_bearer(token)), "revoked")
        assert len(upstream[0].calls) == calls  # refused at the door
        wait_until(
            lambda: erp.get("/erp/v1/items/NOPE", headers=_bearer(token)).status_code == 401,
            what="the service refuses the revoked token",
        )
        _assert_unauthorized(erp.get("/erp/v1/items/NOPE", headers=_bearer(token)), "revoked")
    assert _introspect(http, resource_server, token).json() == {"active": False}
    # revoking twice is fine, and a new token of the same client works
    assert _revoke(http, client, token).status_code == 200
    fresh = token_for(http, *client)
    assert http.get("/erp/v1/items/A", headers=_bearer(fresh)).status_code == 200


def test_a_client_cannot_revoke_another_clients_token(
    http: httpx.Client, registry: ClientRegistry, resource_server: tuple[str, str]
) -> None:
    victim = token_for(http, *registry.create("victim", "erp:read"))
    attacker = registry.create("attacker", "erp:read")
    response = _revoke(http, attacker, victim)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert _introspect(http, resource_server, victim).json()["active"] is True


def test_revoking_an_unknown_token_is_200_and_unauthenticated_revocation_is_401(
    http: httpx.Client, registry: ClientRegistry
) -> None:
    client = registry.create("tidy", "erp:read")
    before = http.get("/oauth/revocations").json()
    assert _revoke(http, client, "not-a-token").status_code == 200
    assert http.get("/oauth/revocations").json()["cursor"] == before["cursor"]
    token = token_for(http, *client)
    anonymous = http.post("/oauth/revoke", data={"token": token})
    assert anonymous.status_code == 401
    assert anonymous.json()["error"] == "invalid_client"
    assert http.get("/erp/v1/items/A", headers=_bearer(token)).status_code == 200
    missing = http.post("/oauth/revoke", data={}, auth=client)
    assert missing.status_code == 400
    assert missing.json()["error"] == "invalid_request"


def test_a_disabled_clients_tokens_are_refused_everywhere(
    http: httpx.Client,
    registry: ClientRegistry,
    resource_server: tuple[str, str],
    erp_url: str,
) -> None:
    client = registry.create("leaver", "erp:read")
    token = token_for(http, *client)
    with httpx.Client(base_url=erp_url, timeout=20) as erp:
        assert erp.get("/erp/v1/items/NOPE", headers=_bearer(token)).status_code == 404
        assert registry.disable(client[0]) is True  # as `tally clients disable` does
        wait_until(
            lambda: http.get("/erp/v1/items/A", headers=_bearer(token)).status_code == 401,
            what="the gateway refuses a disabled client's token",
        )
        wait_until(
            lambda: erp.get("/erp/v1/items/NOPE", headers=_bearer(token)).status_code == 401,
            what="the service refuses a disabled client's token",
        )
        _assert_unauthorized(erp.get("/erp/v1/items/NOPE", headers=_bearer(token)), "revoked")
    assert _introspect(http, resource_server, token).json() == {"active": False}


def test_a_missing_scope_at_a_service_is_403_and_changes_nothing(
    http: httpx.Client, registry: ClientRegistry, erp_url: str
) -> None:
    token = token_for(http, *registry.create("reader", "erp:read"))
    item = {"sku": "SKU-403", "name": "Bolt", "unit_price": {"amount_minor": 1, "currency": "USD"}}
    with httpx.Client(base_url=erp_url, timeout=20, headers=_bearer(token)) as erp:
        response = erp.post("/erp/v1/items", json=item)
        assert response.status_code == 403
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"] == "/problems/insufficient-scope"
        assert erp.get("/erp/v1/items/SKU-403").status_code == 404


def test_the_revocation_list_holds_ids_and_expiry_only(
    http: httpx.Client, registry: ClientRegistry
) -> None:
    client = registry.create("lister", "erp:read")
    token = token_for(http, *client)
    start = http.get("/oauth/revocations").json()["cursor"]
    assert _revoke(http, client, token).status_code == 200
    page = http.get("/oauth/revocations", params={"after": start}).json()
    assert page["items"] == [{"jti": _claims(token)["jti"], "exp": _claims(token)["exp"]}]
    assert page["has_more"] is False
    later = http.get("/oauth/revocations", params={"after": page["cursor"]}).json()
    assert later["items"] == []
    assert later["store_id"] == page["store_id"]
    bad = http.get("/oauth/revocations", params={"after": -1})
    assert bad.status_code == 400
    assert bad.headers["content-type"] == "application/problem+json"


# -- the verifier's side ----------------------------------------------------------------


def test_the_verified_token_cache_honours_revocation(
    http: httpx.Client, registry: ClientRegistry, settings: Settings
) -> None:
    token = token_for(http, *registry.create("cached", "erp:read"))
    revocations = RevocationList()
    jwks = http.get("/.well-known/jwks.json").json()
    verifier = TokenVerifier(
        StaticKeys(jwks), issuer=settings.issuer, audience="erp", revocations=revocations
    )
    principal = asyncio.run(verifier.verify(token))  # verified and cached
    revocations.add(str(principal.jti), principal.expires_at)
    with pytest.raises(InvalidToken, match="revoked"):
        asyncio.run(verifier.verify(token))


def test_the_poller_starts_over_when_the_store_is_reset() -> None:
    pages = {
        ("s1", 0): RevocationPage("s1", [RevokedToken("a", 2**40)], cursor=7),
        ("s1", 7): RevocationPage("s2", [], cursor=7),  # another store answered
        ("s2", 0): RevocationPage("s2", [RevokedToken("b", 2**40)], cursor=1),
    }
    asked: list[tuple[str | None, int]] = []

    async def fetch(store_id: str | None, cursor: int) -> RevocationPage:
        asked.append((store_id, cursor))
        key = (store_id or "s1", cursor)
        return pages[key]

    revocations = RevocationList()
    poller = RevocationPoller(revocations, fetch)
    asyncio.run(poller.poll_once())
    asyncio.run(poller.poll_once())
    assert revocations.is_revoked("a")
    assert revocations.is_revoked("b")
    assert (revocations.store_id, revocations.cursor) == ("s2", 1)
    assert asked == [(None, 0), ("s1", 7), ("s2", 0)]
