"""Verifies RFC 9068 JWT access tokens: signature against the gateway's JWKS, an
algorithm allowlist, ``typ``, issuer, audience, expiry and not-before with a small
leeway. Verified tokens are cached until they expire, keeping signature checks off
the hot path."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from typing import Any, Protocol

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from shared.auth.principal import Principal

ALLOWED_ALGORITHMS = ["ES256", "RS256"]


class InvalidToken(Exception):
    """The token is not acceptable; the message is safe to show the caller."""


class KeySource(Protocol):
    async def key_set(self, *, refresh: bool = False) -> KeySet: ...


class StaticKeys:
    def __init__(self, jwks: dict[str, Any]) -> None:
        self._keys = KeySet.import_key_set(jwks)  # type: ignore[arg-type]

    async def key_set(self, *, refresh: bool = False) -> KeySet:
        return self._keys


class RemoteJwks:
    """The gateway's JWKS over HTTP, refreshed on an unknown ``kid`` at most every 10 s."""

    def __init__(
        self, url: str, client: httpx.AsyncClient, min_refresh_seconds: float = 10
    ) -> None:
        self.url = url
        self.client = client
        self.min_refresh_seconds = min_refresh_seconds
        self._keys: KeySet | None = None
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    async def key_set(self, *, refresh: bool = False) -> KeySet:
        async with self._lock:
            stale = time.monotonic() - self._fetched_at >= self.min_refresh_seconds
            if self._keys is None or (refresh and stale):
                response = await self.client.get(self.url, timeout=5.0)
                response.raise_for_status()
                self._keys = KeySet.import_key_set(response.json())
                self._fetched_at = time.monotonic()
            return self._keys


class TokenVerifier:
    def __init__(
        self,
        keys: KeySource,
        *,
        issuer: str,
        audience: str,
        leeway: int = 30,
        cache_size: int = 10_000,
        is_revoked: Any = None,
    ) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway
        self.cache_size = cache_size
        self._cache: OrderedDict[str, Principal] = OrderedDict()
        self._claims = jwt.JWTClaimsRegistry(
            leeway=leeway,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": audience},
            exp={"essential": True},
            client_id={"essential": True},
            jti={"essential": True},
        )

    async def verify(self, token: str) -> Principal:
        cached = self._cache.get(token)
        if cached is not None:
            if cached.expires_at + self.leeway > time.time():
                return cached
            self._cache.pop(token, None)
        principal = await self._verify_uncached(token)
        self._cache[token] = principal
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return principal

    async def _decode(self, token: str, *, refresh: bool) -> jwt.Token:
        keys = await self.keys.key_set(refresh=refresh)
        return jwt.decode(token, keys, algorithms=ALLOWED_ALGORITHMS)

    async def _verify_uncached(self, token: str) -> Principal:
        try:
            try:
                decoded = await self._decode(token, refresh=False)
            except JoseError as exc:
                if exc.error != "invalid_key_id":
                    raise
                decoded = await self._decode(token, refresh=True)  # a rotated signing key
            if decoded.header.get("typ", "").lower() not in ("at+jwt", "application/at+jwt"):
                raise InvalidToken("The token is not an access token (typ must be at+jwt).")
            self._claims.validate(decoded.claims)
        except JoseError as exc:
            raise InvalidToken(f"The access token is invalid: {exc.error}.") from exc
        except (ValueError, TypeError, KeyError) as exc:
            raise InvalidToken("The access token is malformed.") from exc
        except httpx.HTTPError as exc:
            raise InvalidToken("The signing keys could not be fetched.") from exc
        claims = decoded.claims
        scope = claims.get("scope") or ""
        return Principal(
            client_id=str(claims["client_id"]),
            scopes=frozenset(str(scope).split()),
            customer_id=claims.get("customer_id"),
            token=token,
            jti=claims.get("jti"),
            expires_at=int(claims["exp"]),
            tier=claims.get("tier"),
        )
