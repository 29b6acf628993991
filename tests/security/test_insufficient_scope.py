"""A good token without a grant is 403, a bad token is 401 (decision 0023).

A token whose signature, issuer, expiry and revocation check out but whose audience
does not name the API it is used at lacks a grant: every service, and the gateway in
front of them, answers 403 problem+json ``/problems/insufficient-scope`` with
``WWW-Authenticate: Bearer error="insufficient_scope"``. A forged or tampered token
stays 401 ``invalid_token``. A partner tells "wrong token" from "no grant"."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest

from tests.security.helpers import World, bearer, register_client
from tests.support.platform import PlatformClient
from tests.support.problems import assert_problem
from tests.support.tokens import TestIssuer


@dataclass(frozen=True)
class Probe:
    service: str  # the service's process, for calls straight at it
    api: str  # the audience it verifies
    path: str  # a route of it that needs a scope
    scope: str  # the scope that route declares
    call: Callable[[httpx.Client, str], httpx.Response]


def _get(client: httpx.Client, path: str) -> httpx.Response:
    return client.get(path)


def _graphql(client: httpx.Client, path: str) -> httpx.Response:
    return client.post(path, json={"query": "{ orders { nextCursor } }"})


PROBES = [
    Probe("erp", "erp", "/erp/v1/items/{sku}", "erp:read", _get),
    Probe("wms", "wms", "/wms/v1/warehouses", "wms:read", _get),
    Probe("availability", "availability", "/availability/v1/items/{sku}", "inventory:read", _get),
    Probe("order_to_ship", "orders", "/orders/v1/orders", "orders:read", _get),
    Probe("billing", "billing", "/billing/v1/invoices", "billing:read", _get),
    Probe("portal", "graphql", "/graphql", "portal", _graphql),
]


@pytest.fixture(scope="module")
def tokens(platform: PlatformClient) -> dict[str, str]:
    """Genuine tokens of two unbound clients: one names the billing API only, the other
    the orders API only (so every API has a token that does not name it)."""
    return {
        "billing": bearer(platform, register_client(platform, "billing:read")),
        "orders": bearer(platform, register_client(platform, "orders:read")),
    }


def _not_for(api: str, tokens: dict[str, str]) -> str:
    return tokens["orders"] if api == "billing" else tokens["billing"]


def _tampered(token: str, api: str) -> str:
    """The same token with ``aud`` rewritten to name ``api``: the signature breaks."""
    head, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["aud"] = [api]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{head}.{forged}.{signature}"


def _base(platform: PlatformClient, probe: Probe, via: str) -> str:
    return platform.gateway if via == "gateway" else platform.url(probe.service)


@pytest.mark.parametrize("via", ["gateway", "direct"])
@pytest.mark.parametrize("probe", PROBES, ids=[p.service for p in PROBES])
def test_a_good_token_for_another_api_is_403_insufficient_scope(
    platform: PlatformClient, world: World, tokens: dict[str, str], probe: Probe, via: str
) -> None:
    path = probe.path.format(sku=world.sku)
    with platform.client(_not_for(probe.api, tokens), base=_base(platform, probe, via)) as api:
        response = probe.call(api, path)
    assert_problem(response, 403, "/problems/insufficient-scope", correlated=False)
    assert f"not issued for the {probe.api} API" in response.json()["detail"]
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer error="insufficient_scope"'), challenge
    if via == "direct":  # the service knows the route, so it names the scope it needs
        assert f'scope="{probe.scope}"' in challenge, challenge


@pytest.mark.parametrize("via", ["gateway", "direct"])
@pytest.mark.parametrize("probe", PROBES, ids=[p.service for p in PROBES])
def test_a_tampered_or_forged_token_stays_401_invalid_token(
    platform: PlatformClient,
    world: World,
    tokens: dict[str, str],
    probe: Probe,
    via: str,
) -> None:
    path = probe.path.format(sku=world.sku)
    stranger = TestIssuer(platform.gateway)  # our issuer's name, another key
    bad = {
        "tampered": _tampered(_not_for(probe.api, tokens), probe.api),
        "forged": stranger.token(probe.scope, audience=[probe.api]),
    }
    for name, token in bad.items():
        with platform.client(token, base=_base(platform, probe, via)) as api:
            response = probe.call(api, path)
        assert_problem(response, 401, "/problems/unauthorized", correlated=False)
        challenge = response.headers["www-authenticate"]
        assert challenge.startswith('Bearer error="invalid_token"'), (name, challenge)


@pytest.mark.parametrize("via", ["gateway", "direct"])
def test_a_token_without_the_portal_scope_gets_403_from_graphql(
    platform: PlatformClient, via: str
) -> None:
    """The case that was reported: a partner's orders token at /graphql."""
    token = bearer(platform, register_client(platform, "orders:read inventory:read"))
    base = platform.gateway if via == "gateway" else platform.url("portal")
    with platform.client(token, base=base) as api:
        response = api.post("/graphql", json={"query": "{ orders { nextCursor } }"})
    assert_problem(response, 403, "/problems/insufficient-scope", correlated=False)
    assert "Invalid claim" not in response.text
