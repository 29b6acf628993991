"""The OAuth 2 authorization server: Authlib's ``AuthorizationServer`` for Litestar,
the client credentials grant (client_secret_basic, client_secret_post and
private_key_jwt), RFC 9068 JWT access tokens signed with ES256, and the RFC 7662
introspection and RFC 7009 revocation endpoints (gateway/oauth/endpoints.py).

Authlib is synchronous: :meth:`TallyAuthorizationServer.token_response` is the one
entry point and runs in a worker thread (the registry read and the argon2 check
block). OAuth errors are RFC 6749 JSON (``{"error": ..., "error_description": ...}``)
as the OAuth specification requires, not problem+json.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
from collections import defaultdict
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from authlib.common.security import is_secure_transport
from authlib.oauth2 import AuthorizationServer, OAuth2Request
from authlib.oauth2.rfc6749 import ClientMixin, OAuth2Payload, grants
from authlib.oauth2.rfc6749.errors import (
    InvalidClientError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Error,
    UnsupportedTokenTypeError,
)
from authlib.oauth2.rfc6749.util import extract_basic_authorization, scope_to_list
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from litestar import Response
from litestar.enums import MediaType

from gateway.clients.registry import PRIVATE_KEY_JWT, ClientRecord, ClientRegistry, burn_verify
from gateway.oauth.assertion import ClientAuthRefused, PrivateKeyJwtAuth, shown
from gateway.oauth.endpoints import IntrospectionEndpoint, RevocationEndpoint
from gateway.oauth.keys import ALGORITHM, KeyStore, token_lifetime_seconds
from gateway.oauth.token_store import TokenStore
from shared.auth.revocation import RevocationList
from shared.topology import ALL_SCOPES

log = logging.getLogger("tally.gateway.oauth")

TOKEN_PATH = "/oauth/token"  # noqa: S105 (a path, not a secret)
INTROSPECT_PATH = "/oauth/introspect"
REVOKE_PATH = "/oauth/revoke"
SECRET_METHODS = ("client_secret_basic", "client_secret_post")
AUTH_METHODS = (*SECRET_METHODS, PRIVATE_KEY_JWT)
ENDPOINTS = ("token", "introspection", "revocation")
FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
# A failed secret says the same for an unknown id, a wrong secret and a disabled client.
WRONG_CREDENTIALS_TEXT = (
    "Client authentication failed: the client id is unknown, the secret is wrong, or the "
    "client does not authenticate with a secret."
)
NO_CREDENTIALS_TEXT = (
    "No client authentication was sent: use HTTP Basic (client_secret_basic), client_id "
    "and client_secret in the form (client_secret_post), or a signed client assertion "
    "(private_key_jwt)."
)


class OAuthClient(ClientMixin):  # type: ignore[misc]
    """Authlib's view of a registry row. An unknown or disabled client is still an
    object: its secret check burns the time of a real one and fails, so the answer
    (401 invalid_client) and its timing say nothing about which ids exist."""

    def __init__(self, client_id: str, record: ClientRecord | None) -> None:
        self.client_id = client_id
        self.record = record if record is not None and not record.disabled else None

    def get_client_id(self) -> str:
        return self.client_id

    def check_client_secret(self, client_secret: str) -> bool:
        if self.record is None:
            burn_verify(client_secret)
            return False
        return self.record.check_secret(client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.record is None or endpoint not in ENDPOINTS:
            return False
        if self.record.auth_method == PRIVATE_KEY_JWT:
            return method == PRIVATE_KEY_JWT
        return method in SECRET_METHODS

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "client_credentials"

    def get_allowed_scope(self, scope: str | None) -> str | None:
        """requested ∩ allowed (all allowed when none is requested); None (Authlib:
        invalid_scope) when nothing of what was asked may be granted."""
        if self.record is None:
            return None
        allowed = self.record.scopes
        requested = scope_to_list(scope) if scope else list(allowed)
        granted = [s for s in dict.fromkeys(requested) if s in allowed]
        return " ".join(granted) if granted else None


class ClientCredentialsGrant(grants.ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = list(AUTH_METHODS)

    def validate_requested_scope(self) -> None:
        """Runs after client authentication: the reason may name the client's grants."""
        requested = self.request.payload.scope
        if not requested:
            return
        unknown = [name for name in scope_to_list(requested) if name not in ALL_SCOPES]
        if unknown:
            raise InvalidScopeError(description=f"Unknown scopes: {shown(' '.join(unknown), 200)}.")
        if self.request.client.get_allowed_scope(requested) is None:
            raise InvalidScopeError(
                description=(
                    f"None of the requested scopes ({shown(requested, 200)}) is granted to "
                    "this client."
                )
            )


class AccessTokenGenerator(JWTBearerTokenGenerator):  # type: ignore[misc]
    """RFC 9068: typ at+jwt, ES256 with the active key's kid; aud = the client's APIs."""

    def __init__(self, issuer: str, keys: KeyStore, lifetime: int) -> None:
        super().__init__(issuer, alg=ALGORITHM, expires_generator=lifetime)
        self.keys = keys

    def get_jwks(self) -> Any:
        self.keys.reload_if_changed()  # a rotation by the CLI or another replica signs at once
        return self.keys.signing_key_set()

    def get_audiences(self, client: OAuthClient, user: Any, scope: str) -> list[str]:
        assert client.record is not None
        return list(client.record.allowed_apis)

    def get_jti(self, client: OAuthClient, grant_type: str, user: Any, scope: str) -> str:
        return secrets.token_urlsafe(16)

    def get_extra_claims(
        self, client: OAuthClient, grant_type: str, user: Any, scope: str
    ) -> dict[str, Any]:
        assert client.record is not None
        claims: dict[str, Any] = {"tier": client.record.tier}
        if client.record.customer_id:
            claims["customer_id"] = client.record.customer_id
        return claims


class FormPayload(OAuth2Payload):  # type: ignore[misc]
    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for name, value in pairs:
            self._datalist[name].append(value)
        self._data = {name: values[0] for name, values in self._datalist.items()}

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class FormRequest(OAuth2Request):  # type: ignore[misc]
    def __init__(self, uri: str, headers: Mapping[str, str], payload: FormPayload) -> None:
        super().__init__("POST", uri, headers=headers)
        self.payload = payload

    @property
    def args(self) -> dict[str, str]:
        return {}

    @property
    def form(self) -> dict[str, str]:
        return self.payload.data


class TallyAuthorizationServer(AuthorizationServer):  # type: ignore[misc]
    def __init__(
        self,
        registry: ClientRegistry,
        issuer: str,
        keys: KeyStore,
        store: TokenStore | None = None,
        lifetime: int | None = None,
        revocations: RevocationList | None = None,
    ) -> None:
        super().__init__(scopes_supported=list(ALL_SCOPES))
        self.registry = registry
        self.issuer = issuer
        self.keys = keys
        self.store = store or TokenStore(registry.engine)
        self.lifetime = lifetime or token_lifetime_seconds()
        # this replica's verifiers refuse a token revoked here at once, before any poll
        self.revocations = revocations if revocations is not None else RevocationList()
        # The endpoint's canonical URL: Authlib refuses plain http unless it is loopback.
        base = issuer.rstrip("/")
        self.token_uri = base + TOKEN_PATH
        self.base_uri = base
        if not is_secure_transport(self.token_uri):
            log.warning(
                "issuer %s is neither https nor loopback: every token request will be refused "
                "(insecure_transport) unless AUTHLIB_INSECURE_TRANSPORT=1",
                issuer,
            )
        self.register_client_auth_method(
            PRIVATE_KEY_JWT, PrivateKeyJwtAuth(self.token_uri, issuer, self.store)
        )
        self.register_grant(ClientCredentialsGrant)
        self.register_token_generator("default", AccessTokenGenerator(issuer, keys, self.lifetime))
        self.register_endpoint(IntrospectionEndpoint(self, list(AUTH_METHODS)))
        self.register_endpoint(RevocationEndpoint(self, list(AUTH_METHODS)))

    def on_revoked(self, jti: str, exp: int) -> None:
        self.revocations.add(jti, exp)

    # -- Authlib callbacks -------------------------------------------------------------
    def query_client(self, client_id: str) -> OAuthClient:
        return OAuthClient(client_id, self.registry.get(client_id))

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        """Records the jti before the token leaves, so a disable can revoke it; a
        client disabled since it was read gets nothing (see token_store.py)."""
        client = request.client
        claims = decode_unverified(token["access_token"])
        if not self.store.record_issued(
            str(claims["jti"]), client.get_client_id(), int(claims["exp"])
        ):
            # the caller proved its credentials: it may learn the client was disabled
            raise ClientAuthRefused("The client was disabled while the token was issued.")
        log.info("issued access token to %s (scope %r)", client.get_client_id(), token.get("scope"))

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None

    def create_oauth2_request(self, request: FormRequest) -> OAuth2Request:
        return request

    def handle_response(
        self, status: int, body: Any, headers: list[tuple[str, str]]
    ) -> Response[Any]:
        plain = {name: value for name, value in headers if name.lower() != "content-type"}
        return Response(body, status_code=status, headers=plain, media_type=MediaType.JSON)

    def handle_error_response(self, request: Any, error: OAuth2Error) -> Response[Any]:
        if isinstance(error, InvalidClientError):
            error.status_code = 401
            if not isinstance(error, ClientAuthRefused):
                # Authlib's own texts may name the client: say what was sent instead
                error.description = _credentials_refusal(request)
            log.info("client authentication failed: %s", error.description)
        elif isinstance(error, UnsupportedTokenTypeError):
            error.status_code = 400  # RFC 7009 §2.2.1
        if not error.description:
            error.description = _DEFAULT_DESCRIPTIONS.get(error.error, error.error)
        return super().handle_error_response(request, error)  # type: ignore[no-any-return]

    # -- the entry points (sync: run them in a worker thread) -----------------------------
    def token_response(self, body: bytes, headers: Mapping[str, str]) -> Response[Any]:
        request: FormRequest | None = None
        try:
            request = self._parse(body, headers, self.token_uri)
            return self.create_token_response(request)  # type: ignore[no-any-return]
        except OAuth2Error as error:
            return self.handle_error_response(request, error)

    def endpoint_response(
        self, name: str, path: str, body: bytes, headers: Mapping[str, str]
    ) -> Response[Any]:
        """``introspection`` or ``revocation``."""
        request: FormRequest | None = None
        try:
            request = self._parse(body, headers, self.base_uri + path, needs_grant=False)
            return self.create_endpoint_response(name, request)  # type: ignore[no-any-return]
        except OAuth2Error as error:
            return self.handle_error_response(request, error)

    def _parse(
        self, body: bytes, headers: Mapping[str, str], uri: str, *, needs_grant: bool = True
    ) -> FormRequest:
        content_type = (headers.get("content-type") or "").split(";", 1)[0].strip().lower()
        if content_type != FORM_MEDIA_TYPE:
            raise InvalidRequestError(f"The token request must be {FORM_MEDIA_TYPE}.")
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
        except (UnicodeDecodeError, ValueError) as exc:
            raise InvalidRequestError("The request body is not valid form data.") from exc
        payload = FormPayload(pairs)
        repeated = sorted(name for name, values in payload.datalist.items() if len(values) > 1)
        if repeated:
            raise InvalidRequestError(f"Parameters repeated: {', '.join(repeated)}.")
        if needs_grant and not payload.grant_type:
            raise InvalidRequestError("Missing 'grant_type' parameter.")
        return FormRequest(uri, headers, payload)


_DEFAULT_DESCRIPTIONS = {
    "unsupported_grant_type": "Only grant_type=client_credentials is supported.",
    "invalid_scope": "None of the requested scopes is granted to this client.",
    "unsupported_token_type": "Only access tokens are introspected or revoked here.",
    "invalid_grant": "The grant is not valid for this client.",
    "unauthorized_client": "This client may not use this grant or endpoint.",
    "invalid_request": "The request is malformed.",
}


def _credentials_refusal(request: FormRequest | None) -> str:
    """Why a client authentication without an assertion failed, from what was sent
    only: the same text whether or not the client id exists."""
    if request is None:
        return NO_CREDENTIALS_TEXT
    authorization = request.headers.get("authorization") or request.headers.get("Authorization")
    if authorization:
        if authorization.split(" ", 1)[0].lower() != "basic":
            return "The Authorization header of a client must be HTTP Basic (client_secret_basic)."
        client_id, secret = extract_basic_authorization(request.headers)
        if not client_id or not secret:
            return "The HTTP Basic credentials are malformed (base64 of 'client_id:secret')."
        return WRONG_CREDENTIALS_TEXT
    form = request.form
    if form.get("client_id") and form.get("client_secret"):
        return WRONG_CREDENTIALS_TEXT
    if form.get("client_id"):
        return "client_secret is missing (or authenticate with a client assertion)."
    return NO_CREDENTIALS_TEXT


def decode_unverified(token: str) -> dict[str, Any]:
    """The claims of a token this server has just signed (no need to check it)."""
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))
