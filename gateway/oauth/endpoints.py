"""``POST /oauth/introspect`` (RFC 7662) and ``POST /oauth/revoke`` (RFC 7009).

Both authenticate the caller like the token endpoint (secret or private_key_jwt).
Introspection answers only resource servers: internal-tier clients, or clients with
the ``admin`` or the ``introspect`` scope, never a client bound to a customer; any
other client is 403 ``unauthorized_client`` before the token is looked at. A token
that is expired, revoked, not ours, tampered or unknown is ``{"active": false}``.

Revocation lets a client revoke its own access tokens. The jti goes into the
gateway's store (every verifier picks it up, decision 0011) and at once into this
replica's in-memory list. An unknown or invalid token is 200 with nothing done, as
RFC 7009 §2.2 asks; another client's token is refused.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from authlib.consts import default_json_headers
from authlib.oauth2.rfc6749.errors import UnauthorizedClientError
from authlib.oauth2.rfc7009 import RevocationEndpoint as BaseRevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint as BaseIntrospectionEndpoint
from joserfc.errors import JoseError

from shared.auth.verifier import InvalidToken, claims_registry, decode_access_token

if TYPE_CHECKING:
    from gateway.oauth.server import OAuthClient, TallyAuthorizationServer

log = logging.getLogger("tally.gateway.oauth")

INTROSPECT_SCOPE = "introspect"
VERIFY_LEEWAY_SECONDS = 30


@dataclass(frozen=True, slots=True)
class AccessToken:
    claims: dict[str, Any]
    revoked: bool

    @property
    def client_id(self) -> str:
        return str(self.claims["client_id"])

    def check_client(self, client: OAuthClient) -> bool:
        return self.client_id == client.get_client_id()

    def is_expired(self) -> bool:
        return False  # decode_access_token refused it otherwise

    def is_revoked(self) -> bool:
        return self.revoked


def may_introspect(client: OAuthClient) -> bool:
    record = client.record
    if record is None or record.customer_id is not None:  # a partner is no resource server
        return False
    return record.tier == "internal" or bool({"admin", INTROSPECT_SCOPE} & set(record.scopes))


class _TokenLookup:
    server: TallyAuthorizationServer
    CLIENT_AUTH_METHODS: list[str]
    SUPPORTED_TOKEN_TYPES = ("access_token",)

    def query_token(self, token_string: str, token_type_hint: str | None) -> AccessToken | None:
        """A token this gateway signed and that is still within its lifetime, else None."""
        keys = self.server.keys
        keys.reload_if_changed()
        claims_check = claims_registry(self.server.issuer, None, VERIFY_LEEWAY_SECONDS)
        try:
            claims = decode_access_token(token_string, keys.public_key_set(), claims_check)
        except (InvalidToken, JoseError, ValueError, TypeError, KeyError):
            return None
        return AccessToken(claims, self.server.store.is_revoked(str(claims["jti"])))


class IntrospectionEndpoint(_TokenLookup, BaseIntrospectionEndpoint):  # type: ignore[misc]
    def __init__(self, server: TallyAuthorizationServer, auth_methods: list[str]) -> None:
        super().__init__(server)
        self.CLIENT_AUTH_METHODS = auth_methods

    def create_endpoint_response(self, request: Any) -> tuple[int, dict[str, Any], Any]:
        client = self.authenticate_endpoint_client(request)
        if not may_introspect(client):
            error = UnauthorizedClientError(
                description="Only resource servers may introspect tokens."
            )
            error.status_code = 403
            raise error
        token = self.authenticate_token(request, client)
        return 200, self.create_introspection_payload(token), default_json_headers

    def check_permission(self, token: AccessToken, client: OAuthClient, request: Any) -> bool:
        return may_introspect(client)

    def introspect_token(self, token: AccessToken) -> dict[str, Any]:
        claims = token.claims
        payload = {
            "active": True,
            "token_type": "Bearer",
            "scope": claims.get("scope", ""),
            "client_id": claims["client_id"],
            "sub": claims["sub"],
            "aud": claims.get("aud"),
            "iss": claims["iss"],
            "exp": claims["exp"],
            "iat": claims["iat"],
            "jti": claims["jti"],
        }
        for extra in ("nbf", "tier", "customer_id"):
            if extra in claims:
                payload[extra] = claims[extra]
        return payload


class RevocationEndpoint(_TokenLookup, BaseRevocationEndpoint):  # type: ignore[misc]
    def __init__(self, server: TallyAuthorizationServer, auth_methods: list[str]) -> None:
        super().__init__(server)
        self.CLIENT_AUTH_METHODS = auth_methods

    def revoke_token(self, token: AccessToken, request: Any) -> None:
        jti, exp = str(token.claims["jti"]), int(token.claims["exp"])
        if self.server.store.revoke(jti, token.client_id, exp, "revoked_by_client"):
            log.info("client %s revoked token %s", token.client_id, jti)
        self.server.on_revoked(jti, exp)
