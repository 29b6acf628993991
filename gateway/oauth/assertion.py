"""``private_key_jwt`` client authentication (RFC 7523 §2.2, OpenID Connect Core §9).

The client signs a short JWT with its private key: ``iss`` = ``sub`` = its client id,
``aud`` = the token endpoint URL or the issuer, ``exp`` at most a few minutes ahead,
and a ``jti`` that is accepted once (kept until ``exp``, so a replay is refused).
The signature is checked against the public keys the client registered, with an
asymmetric-only algorithm allowlist.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from authlib.oauth2.rfc6749.errors import InvalidClientError
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from gateway.oauth.token_store import TokenStore

log = logging.getLogger("tally.gateway.oauth")

PRIVATE_KEY_JWT = "private_key_jwt"
ASSERTION_ALGORITHMS = ["ES256", "ES384", "ES512", "RS256", "PS256", "EdDSA"]
MAX_ASSERTION_LIFETIME_SECONDS = 300
LEEWAY_SECONDS = 30


class PrivateKeyJwtAuth(JWTBearerClientAssertion):  # type: ignore[misc]
    CLIENT_AUTH_METHOD = PRIVATE_KEY_JWT

    def __init__(self, audiences: list[str], store: TokenStore) -> None:
        super().__init__(validate_jti=True, leeway=LEEWAY_SECONDS)
        self.audiences = audiences
        self.store = store

    def get_audiences(self) -> list[str]:
        return self.audiences

    def resolve_client_public_key(self, client: Any) -> KeySet:
        record = getattr(client, "record", None)
        if record is None or not record.jwks:
            raise InvalidClientError(description="The client has no registered public keys.")
        return KeySet.import_key_set(record.jwks)

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> dict[str, Any]:
        try:
            token = jwt.decode(assertion, resolve_key, algorithms=ASSERTION_ALGORITHMS)
        except JoseError as exc:
            raise InvalidClientError(description=exc.description or exc.error) from exc
        claims = dict(token.claims)
        self.verify_claims(claims)
        return claims

    def verify_claims(self, claims: Any) -> None:
        exp = claims.get("exp")
        if (
            isinstance(exp, int | float)
            and exp - time.time() > MAX_ASSERTION_LIFETIME_SECONDS + self.leeway
        ):
            # we keep each jti until exp: an assertion valid for days is refused
            raise InvalidClientError(description="The assertion lives too long.")
        super().verify_claims(claims)

    def validate_jti(self, claims: Any, jti: Any) -> bool:
        if not isinstance(jti, str) or not jti or len(jti) > 255:
            return False
        return self.store.use_assertion_jti(str(claims["sub"]), jti, int(claims["exp"]))
