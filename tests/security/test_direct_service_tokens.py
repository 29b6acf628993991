"""Forged and broken tokens sent straight to each service's port, past the gateway:
every service verifies the token itself (no service trusts the network), so each
attack is a 401 problem+json there too, and a refused write writes nothing. A token
that is genuine but names other APIs only is a 403 insufficient_scope (decision 0023).

Each forgery differs from a token the service accepts in one respect only; the
accepted twin (`test_the_honest_twin_is_accepted`) proves the refusals are about
that respect."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from shared.topology import ALL_AUDIENCES
from tests.security.helpers import World, atp, place
from tests.support.platform import PlatformClient
from tests.support.problems import assert_problem

# service -> (api audience, a read any admin token may make)
READS: dict[str, tuple[str, str, str, dict[str, Any] | None]] = {
    "erp": ("erp", "GET", "/erp/v1/items", None),
    "wms": ("wms", "GET", "/wms/v1/warehouses", None),
    "availability": ("availability", "GET", "/availability/v1/items/SKU-1001", None),
    "order_to_ship": ("orders", "GET", "/orders/v1/orders", None),
    "billing": ("billing", "GET", "/billing/v1/invoices", None),
    "portal": (
        "graphql",
        "POST",
        "/graphql",
        {"query": '{ availability(skus: ["SKU-1001"]) { sku } }'},
    ),
}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64json(value: dict[str, Any]) -> str:
    return _b64(json.dumps(value, separators=(",", ":")).encode())


class Forger:
    """Mints tokens with the gateway's real signing key (read from its data dir, as an
    attacker who stole nothing could not) and breaks them one way at a time."""

    def __init__(self, platform: PlatformClient) -> None:
        stored = json.loads((platform.platform.data_dir / "keys" / "signing-keys.json").read_text())
        key_set = KeySet.import_key_set(stored if "keys" in stored else {"keys": stored})
        active = stored.get("active_kid") if isinstance(stored, dict) else None
        self.key = next((k for k in key_set.keys if k.kid == active), key_set.keys[-1])
        meta = httpx.get(f"{platform.gateway}/.well-known/oauth-authorization-server", timeout=10)
        self.issuer = str(meta.json()["issuer"])
        self.client_id = platform.demo_id

    def claims(self, **changes: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": list(ALL_AUDIENCES),
            "sub": self.client_id,
            "client_id": self.client_id,
            "scope": "admin",
            "jti": uuid.uuid4().hex,
            "iat": now,
            "exp": now + 600,
        }
        claims.update(changes)
        return {k: v for k, v in claims.items() if v is not None}

    def header(self, **changes: Any) -> dict[str, Any]:
        return {"alg": "ES256", "kid": self.key.kid, "typ": "at+jwt", **changes}

    def signed(self, claims: dict[str, Any] | None = None, **header: Any) -> str:
        return jwt.encode(self.header(**header), claims or self.claims(), self.key)

    # -- the attacks ---------------------------------------------------------------
    def alg_none(self) -> str:
        return f"{_b64json(self.header(alg='none'))}.{_b64json(self.claims())}."

    def hs256_with_public_key(self, form: str) -> str:
        """The classic key confusion: HMAC keyed with the published public key."""
        public = (
            self.key.as_pem(private=False)
            if form == "pem"
            else (json.dumps(self.key.as_dict(private=False)).encode())
        )
        signing_input = f"{_b64json(self.header(alg='HS256'))}.{_b64json(self.claims())}"
        mac = hmac.new(public, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{_b64(mac)}"

    def unknown_kid(self) -> str:
        stranger = ECKey.generate_key("P-256", parameters={"kid": "no-such-key"}, private=True)
        return jwt.encode(self.header(kid="no-such-key"), self.claims(), stranger)

    def foreign_key_with_our_kid(self) -> str:
        stranger = ECKey.generate_key("P-256", private=True)
        return jwt.encode(self.header(), self.claims(), stranger)

    def expired(self) -> str:
        now = int(time.time())
        return self.signed(self.claims(iat=now - 7200, exp=now - 3600))

    def not_yet_valid(self) -> str:
        return self.signed(self.claims(nbf=int(time.time()) + 3600))

    def wrong_issuer(self) -> str:
        return self.signed(self.claims(iss="https://issuer.evil.example"))

    def not_an_access_token(self) -> str:
        return self.signed(typ="JWT")

    def tampered(self) -> str:
        """A genuine narrow token of a customer-bound client, its payload rewritten to
        admin and unbound, the signature kept."""
        honest = self.signed(self.claims(scope="orders:read", customer_id="CUST-NARROW"))
        header, _, signature = honest.split(".")
        return f"{header}.{_b64json(self.claims())}.{signature}"

    def wrong_audience(self, audience: str) -> str:
        return self.signed(self.claims(aud=[a for a in ALL_AUDIENCES if a != audience]))


ATTACKS: dict[str, Callable[[Forger, str], str]] = {
    "alg-none": lambda f, _: f.alg_none(),
    "hs256-with-public-pem": lambda f, _: f.hs256_with_public_key("pem"),
    "hs256-with-public-jwk": lambda f, _: f.hs256_with_public_key("jwk"),
    "unknown-kid": lambda f, _: f.unknown_kid(),
    "foreign-key-with-our-kid": lambda f, _: f.foreign_key_with_our_kid(),
    "expired": lambda f, _: f.expired(),
    "not-yet-valid": lambda f, _: f.not_yet_valid(),
    "wrong-issuer": lambda f, _: f.wrong_issuer(),
    "not-an-access-token": lambda f, _: f.not_an_access_token(),
    "tampered-payload": lambda f, _: f.tampered(),
    "wrong-audience": lambda f, audience: f.wrong_audience(audience),
}


# A genuine token for other APIs lacks a grant (403), it is not a bad token (401).
REFUSALS: dict[str, tuple[int, str]] = {"wrong-audience": (403, "/problems/insufficient-scope")}
BAD_TOKEN = (401, "/problems/unauthorized")


@pytest.fixture(scope="module")
def forger(platform: PlatformClient) -> Forger:
    return Forger(platform)


def _call(platform: PlatformClient, service: str, token: str) -> httpx.Response:
    _, method, path, body = READS[service]
    return httpx.request(
        method,
        platform.url(service) + path,
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )


@pytest.mark.parametrize("service", list(READS))
def test_the_honest_twin_is_accepted(
    platform: PlatformClient, forger: Forger, service: str
) -> None:
    response = _call(platform, service, forger.signed())
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("attack", list(ATTACKS))
@pytest.mark.parametrize("service", list(READS))
def test_a_forged_token_is_refused_by_the_service_itself(
    platform: PlatformClient, forger: Forger, service: str, attack: str
) -> None:
    token = ATTACKS[attack](forger, READS[service][0])
    response = _call(platform, service, token)
    assert_problem(response, *REFUSALS.get(attack, BAD_TOKEN), correlated=False)
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.fixture(scope="module")
def open_order(admin: httpx.Client, world: World) -> str:
    """An order of tenant A that an honest cancel would cancel."""
    return place(admin, world.a.customer_id, world.sku, quantity=1)


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_a_forged_token_writes_nothing(
    platform: PlatformClient,
    forger: Forger,
    world: World,
    admin: httpx.Client,
    open_order: str,
    attack: str,
) -> None:
    customer = world.a.customer_id
    before = admin.get("/orders/v1/orders", params={"customer_id": customer}).json()
    assert open_order in {order["order_id"] for order in before["items"]}
    stock = atp(admin, world.sku)
    orders = platform.url("order_to_ship") + "/orders/v1/orders"
    forged = {"Authorization": f"Bearer {ATTACKS[attack](forger, 'orders')}"}
    order = {
        "customer_id": customer,
        "channel": "edi",
        "lines": [{"sku": world.sku, "quantity": 1}],
    }
    placed = httpx.post(
        orders, json=order, headers=forged | {"Idempotency-Key": f"forged-{attack}"}, timeout=10
    )
    assert_problem(placed, *REFUSALS.get(attack, BAD_TOKEN), correlated=False)
    cancelled = httpx.post(f"{orders}/{open_order}/cancel", headers=forged, timeout=10)
    assert_problem(cancelled, *REFUSALS.get(attack, BAD_TOKEN), correlated=False)
    assert admin.get("/orders/v1/orders", params={"customer_id": customer}).json() == before
    assert atp(admin, world.sku) == stock
