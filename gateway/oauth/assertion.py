"""``private_key_jwt`` client authentication (RFC 7523 §2.2 and §3, RFC 7521 §4.2,
OpenID Connect Core §9), with the bounds of decision 0023.

The client signs a JWT with its private key: ``iss`` = ``sub`` = its client id, an
``aud`` naming this server, ``exp`` at most an hour ahead (what Authlib and most
client libraries sign), and a ``jti`` that is accepted once: it is kept in the
gateway's database until ``exp`` has passed, so a replay is refused for the
assertion's whole life, on every replica.

Accepted audiences: the token endpoint URL and the issuer identifier everywhere;
the introspection or revocation endpoint URL on a call to that endpoint (what a
client library signs when the token endpoint is not configured).

Every refusal says why (:class:`ClientAuthRefused`), but nothing said before the
signature has verified tells an unknown client from a known one: an unknown or
disabled client, or one that authenticates with a secret, has no keys, and is
refused exactly like a known client whose keys do not match the assertion.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from authlib.oauth2.rfc6749.errors import InvalidClientError
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from gateway.clients.registry import PRIVATE_KEY_JWT
from gateway.oauth.token_store import TokenStore

if TYPE_CHECKING:
    from gateway.oauth.server import OAuthClient

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGORITHMS = ["ES256", "ES384", "ES512", "RS256", "PS256", "EdDSA"]
# Authlib, and most libraries after it, sign assertions valid for an hour.
MAX_ASSERTION_LIFETIME_SECONDS = 3600
LEEWAY_SECONDS = 60
MAX_JTI_LENGTH = 255
MAX_KEYS_TRIED = 10


class ClientAuthRefused(InvalidClientError):  # type: ignore[misc]
    """A refused client authentication whose description is safe to show the caller:
    it says what was wrong without telling whether the client id exists."""

    def __init__(self, description: str) -> None:
        super().__init__(description=description, status_code=401)


def shown(value: object, limit: int = 80) -> str:
    """A caller's value quoted back in an error_description: RFC 6749 §5.2 allows
    printable ASCII without '"' and '\\' only, and it is cut short."""
    text = "".join(c for c in str(value) if " " <= c <= "~" and c not in '"\\')
    return text[:limit]


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class PrivateKeyJwtAuth:
    """An Authlib client authentication method (``server.register_client_auth_method``)."""

    def __init__(
        self, token_uri: str, issuer: str, store: TokenStore, *, leeway: int = LEEWAY_SECONDS
    ) -> None:
        self.token_uri = token_uri
        self.issuer_ids = list(dict.fromkeys([issuer, issuer.rstrip("/")]))
        self.store = store
        self.leeway = leeway

    def audiences_for(self, endpoint_uri: str) -> list[str]:
        """What ``aud`` may name on a call to ``endpoint_uri``."""
        return list(dict.fromkeys([self.token_uri, *self.issuer_ids, endpoint_uri]))

    def __call__(self, query_client: Any, request: Any) -> OAuthClient | None:
        form = request.form
        assertion_type = form.get("client_assertion_type")
        assertion = form.get("client_assertion")
        if not assertion_type and not assertion:
            return None  # not this method: the caller tries the others
        if assertion_type != ASSERTION_TYPE:
            raise ClientAuthRefused(f"client_assertion_type must be '{ASSERTION_TYPE}'.")
        if not assertion:
            raise ClientAuthRefused("client_assertion is missing.")
        header, unverified = _extract(assertion)
        client_id = unverified.get("sub")
        if not isinstance(client_id, str) or not client_id:
            raise ClientAuthRefused("The assertion has no 'sub' claim naming the client id.")
        client: OAuthClient = query_client(client_id)
        claims = self._verified_claims(assertion, header, _keys_of(client))
        self._check_claims(claims, request.uri)
        request.client = client
        return client

    def _verified_claims(self, assertion: str, header: dict[str, Any], keys: KeySet) -> Any:
        algorithm = header["alg"]
        kid = header.get("kid")
        if kid is not None:
            candidates = [key for key in keys.keys if key.kid == kid]
            if not candidates:
                raise ClientAuthRefused(
                    f"The assertion's key id (kid '{shown(kid)}') is not registered for "
                    "this client."
                )
        else:
            candidates = list(keys.keys)
        for key in candidates[:MAX_KEYS_TRIED]:
            try:
                return jwt.decode(assertion, key, algorithms=[algorithm]).claims
            except (JoseError, ValueError, TypeError):
                continue
        if kid is not None:
            raise ClientAuthRefused(
                f"The assertion's signature does not verify with the key '{shown(kid)}'."
            )
        raise ClientAuthRefused(
            "The assertion's signature does not verify with any key registered for this "
            "client (name the key in the 'kid' header)."
        )

    def _check_claims(self, claims: dict[str, Any], endpoint_uri: str) -> None:
        """After the signature: the caller holds the client's key, so each refusal may
        name the claim at fault."""
        now = time.time()
        exp = _number(claims, "exp")
        if exp is None:
            raise ClientAuthRefused("The assertion has no 'exp' claim.")
        if exp + self.leeway < now:
            raise ClientAuthRefused(
                f"The assertion expired at {_when(exp)} (server time {_when(now)})."
            )
        if exp - now > MAX_ASSERTION_LIFETIME_SECONDS + self.leeway:
            raise ClientAuthRefused(
                f"The assertion expires at {_when(exp)}, more than "
                f"{MAX_ASSERTION_LIFETIME_SECONDS} s ahead: sign assertions valid for at most "
                f"{MAX_ASSERTION_LIFETIME_SECONDS // 60} minutes."
            )
        iat = _number(claims, "iat")
        if iat is not None and iat - self.leeway > now:
            raise ClientAuthRefused(
                f"The assertion was issued in the future (iat {_when(iat)}, server time "
                f"{_when(now)}): check the client's clock."
            )
        nbf = _number(claims, "nbf")
        if nbf is not None and nbf - self.leeway > now:
            raise ClientAuthRefused(f"The assertion is not valid before {_when(nbf)}.")
        accepted = self.audiences_for(endpoint_uri)
        audience = claims.get("aud")
        named = audience if isinstance(audience, list) else [audience]
        if not any(isinstance(value, str) and value in accepted for value in named):
            raise ClientAuthRefused(
                "The assertion's audience (aud) must name this server: one of "
                + ", ".join(accepted)
                + "."
            )
        if claims.get("iss") != claims.get("sub"):
            raise ClientAuthRefused("The assertion's 'iss' and 'sub' must both be the client id.")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_LENGTH:
            raise ClientAuthRefused(
                f"The assertion needs a unique 'jti' of 1 to {MAX_JTI_LENGTH} characters."
            )
        if not self.store.use_assertion_jti(str(claims["sub"]), jti, int(exp)):
            raise ClientAuthRefused(
                "The assertion's jti was used before: sign a new assertion for every request."
            )


def _extract(assertion: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and the (not yet verified) claims; refuses what cannot be an assertion."""
    try:
        compact = jws.extract_compact(assertion.encode("ascii"))
        header = dict(compact.headers())
    except (JoseError, ValueError, UnicodeError) as exc:
        raise ClientAuthRefused("The client assertion is not a signed JWT (JWS compact).") from exc
    try:
        claims = json.loads(compact.payload)
    except ValueError as exc:
        raise ClientAuthRefused("The client assertion's payload is not JSON.") from exc
    if not isinstance(claims, dict):
        raise ClientAuthRefused("The client assertion's payload is not a JSON object.")
    algorithm = header.get("alg")
    if algorithm not in ASSERTION_ALGORITHMS:
        raise ClientAuthRefused(
            f"The assertion's algorithm '{shown(algorithm, 20)}' is not accepted; use one of "
            f"{', '.join(ASSERTION_ALGORITHMS)}."
        )
    return header, claims


def _keys_of(client: OAuthClient) -> KeySet:
    """The client's registered public keys; none for an unknown, disabled or secret client."""
    record = client.record
    if record is None or record.auth_method != PRIVATE_KEY_JWT or not record.jwks:
        return KeySet([])
    return KeySet.import_key_set(record.jwks)  # type: ignore[arg-type]


def _number(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ClientAuthRefused(f"The assertion's '{name}' claim must be a NumericDate.")
    return float(value)
