"""Verifies RFC 9068 JWT access tokens: signature against the gateway's JWKS, an
algorithm allowlist (ES256 only: never ``none``, never an HMAC keyed with a public
key), a ``kid`` the key set knows, ``typ: at+jwt``, issuer, audience, expiry, not-before
and issued-at with a small leeway, and revocation. Verified tokens are cached until
they expire, keeping signature checks off the hot path; the revocation check runs on
every call, cached or not.

The audience is checked last: a token that passes every other check but was not
issued for this API is a good token without the grant (:class:`AudienceNotGranted`,
403 ``insufficient_scope``), not a bad token (401 ``invalid_token``), decision 0023."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from typing import Any, Protocol

import httpx
import msgspec
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from shared.auth.principal import Principal
from shared.auth.revocation import RevocationList

ALLOWED_ALGORITHMS = ["ES256"]  # what the gateway signs with; nothing else is accepted
ACCESS_TOKEN_TYPES = ("at+jwt", "application/at+jwt")


class InvalidToken(Exception):
    """The token is not acceptable; the message is safe to show the caller."""


class KeysUnavailable(Exception):
    """The gateway's signing keys could not be fetched (it is down or restarting): the
    token is not known to be bad, so the caller is told to try again (503), not to
    get a new token (401). A caller that dead-letters on 401 must not lose work to a
    gateway restart."""


class AudienceNotGranted(InvalidToken):
    """The token is genuine, current and not revoked, but its audience does not name
    this API: the client lacks the grant (403), its token is not at fault (401). A
    subclass, so a caller that knows only InvalidToken still refuses the token."""

    def __init__(self, api: str, audiences: tuple[str, ...]) -> None:
        named = ", ".join(audiences) or "none"
        super().__init__(
            f"The access token was not issued for the {api} API (its audience: {named}): "
            f"the client needs a scope of the {api} API."
        )
        self.api = api
        self.audiences = audiences


class KeySource(Protocol):
    async def key_set(self, *, refresh: bool = False) -> KeySet: ...


class StaticKeys:
    def __init__(self, jwks: dict[str, Any]) -> None:
        self._keys = KeySet.import_key_set(jwks)  # type: ignore[arg-type]

    # KeySource's signature: fixed keys have nothing to refresh.
    async def key_set(self, *, refresh: bool = False) -> KeySet:  # noqa: ARG002
        return self._keys


class RemoteJwks:
    """The gateway's JWKS over HTTP, fetched again on an unknown ``kid`` (a rotation).
    At most one fetch a second: a token with a kid seen within that second waits for
    the next allowed fetch rather than being refused, so forged kids cost their sender
    the wait and the gateway at most one request a second."""

    def __init__(self, url: str, client: httpx.AsyncClient, min_refresh_seconds: float = 1) -> None:
        self.url = url
        self.client = client
        self.min_refresh_seconds = min_refresh_seconds
        self._keys: KeySet | None = None
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    async def key_set(self, *, refresh: bool = False) -> KeySet:
        if self._keys is not None and not refresh:
            return self._keys
        if self._keys is not None:
            wait = self._fetched_at + self.min_refresh_seconds - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        async with self._lock:
            stale = time.monotonic() - self._fetched_at >= self.min_refresh_seconds
            if self._keys is None or stale:
                response = await self.client.get(self.url, timeout=5.0)
                response.raise_for_status()
                self._keys = KeySet.import_key_set(response.json())
                self._fetched_at = time.monotonic()
            return self._keys


def claims_registry(issuer: str, audience: str | None, leeway: int) -> jwt.JWTClaimsRegistry:
    options: dict[str, Any] = {
        "iss": {"essential": True, "value": issuer},
        "sub": {"essential": True},
        "exp": {"essential": True},
        "iat": {"essential": True},
        "client_id": {"essential": True},
        "jti": {"essential": True},
    }
    if audience is not None:
        options["aud"] = {"essential": True, "value": audience}
    return jwt.JWTClaimsRegistry(leeway=leeway, **options)


def check_header(token: str) -> dict[str, Any]:
    """Refuses, before any key is touched, what no access token of ours looks like."""
    try:
        header = jws.extract_compact(token.encode("ascii")).headers()
    except (JoseError, ValueError, UnicodeError) as exc:
        raise InvalidToken("The access token is malformed.") from exc
    if header.get("alg") not in ALLOWED_ALGORITHMS:
        raise InvalidToken(
            f"The token's algorithm is not accepted (only {', '.join(ALLOWED_ALGORITHMS)})."
        )
    if not isinstance(header.get("kid"), str):
        raise InvalidToken("The token names no signing key (kid).")
    if str(header.get("typ", "")).lower() not in ACCESS_TOKEN_TYPES:
        raise InvalidToken("The token is not an access token (typ must be at+jwt).")
    return dict(header)


def decode_access_token(token: str, keys: KeySet, claims: jwt.JWTClaimsRegistry) -> dict[str, Any]:
    """Signature and claims; raises InvalidToken, or JoseError ``invalid_key_id`` for a
    kid the key set does not hold (the caller may fetch the keys again)."""
    check_header(token)
    decoded = jwt.decode(token, keys, algorithms=ALLOWED_ALGORITHMS)
    try:
        claims.validate(decoded.claims)
    except JoseError as exc:
        raise InvalidToken(f"The access token is invalid: {exc.description or exc.error}.") from exc
    return dict(decoded.claims)


def token_audiences(claims: dict[str, Any]) -> tuple[str, ...]:
    """The ``aud`` claim as a tuple (RFC 7519: one string or an array of strings)."""
    audience = claims.get("aud")
    if isinstance(audience, str) and audience:
        return (audience,)
    if isinstance(audience, list) and audience and all(isinstance(a, str) for a in audience):
        return tuple(audience)
    raise InvalidToken("The access token names no audience (aud).")


class _Verified(msgspec.Struct, frozen=True):
    principal: Principal
    audiences: tuple[str, ...]


class TokenVerifier:
    def __init__(
        self,
        keys: KeySource,
        *,
        issuer: str,
        audience: str,
        leeway: int = 30,
        cache_size: int = 10_000,
        revocations: RevocationList | None = None,
    ) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway
        self.cache_size = cache_size
        self.revocations = revocations if revocations is not None else RevocationList()
        self._cache: OrderedDict[str, _Verified] = OrderedDict()
        # every claim but the audience, which verify() checks last (see the module doc)
        self._claims = claims_registry(issuer, None, leeway)

    async def verify(self, token: str) -> Principal:
        """The caller; InvalidToken (401) for a bad token, AudienceNotGranted (403) for a
        good one not issued for this API."""
        verified = self._cache.get(token)
        if verified is not None and verified.principal.expires_at + self.leeway <= time.time():
            self._cache.pop(token, None)
            verified = None
        if verified is None:
            verified = await self._verify_uncached(token)
            self._cache[token] = verified
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        if self.revocations.is_revoked(verified.principal.jti):
            raise InvalidToken("The access token has been revoked.")
        if self.audience not in verified.audiences:
            raise AudienceNotGranted(self.audience, verified.audiences)
        return verified.principal

    async def _decode(self, token: str, *, refresh: bool) -> dict[str, Any]:
        keys = await self.keys.key_set(refresh=refresh)
        return decode_access_token(token, keys, self._claims)

    async def _verify_uncached(self, token: str) -> _Verified:
        check_header(token)  # garbage is refused as such, even while keys cannot be fetched
        try:
            try:
                claims = await self._decode(token, refresh=False)
            except JoseError as exc:
                if exc.error != "invalid_key_id":
                    raise
                claims = await self._decode(token, refresh=True)  # a rotated signing key
        except JoseError as exc:
            raise InvalidToken(f"The access token is invalid: {exc.error}.") from exc
        except (ValueError, TypeError, KeyError) as exc:
            raise InvalidToken("The access token is malformed.") from exc
        except httpx.HTTPError as exc:
            raise KeysUnavailable(
                "The gateway's signing keys could not be fetched to check the access "
                "token; retry shortly."
            ) from exc
        audiences = token_audiences(claims)
        scope = claims.get("scope") or ""
        principal = Principal(
            client_id=str(claims["client_id"]),
            scopes=frozenset(str(scope).split()),
            customer_id=claims.get("customer_id"),
            token=token,
            jti=claims.get("jti"),
            expires_at=int(claims["exp"]),
            tier=claims.get("tier"),
        )
        return _Verified(principal, audiences)
