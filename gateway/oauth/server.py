"""The OAuth 2 authorization server: Authlib's ``AuthorizationServer`` for Litestar,
the client credentials grant, and RFC 9068 JWT access tokens signed with ES256.

Authlib is synchronous: :meth:`TallyAuthorizationServer.token_response` is the one
entry point and runs in a worker thread (the registry read and the argon2 check
block). OAuth errors are RFC 6749 JSON (``{"error": ..., "error_description": ...}``)
as the OAuth specification requires, not problem+json.
"""

from __future__ import annotations

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
    OAuth2Error,
)
from authlib.oauth2.rfc6749.util import scope_to_list
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from litestar import Response
from litestar.enums import MediaType

from gateway.clients.registry import ClientRecord, ClientRegistry, burn_verify
from gateway.oauth.keys import ALGORITHM, KeyStore
from shared.topology import ALL_SCOPES

log = logging.getLogger("tally.gateway.oauth")

TOKEN_LIFETIME_SECONDS = 15 * 60
TOKEN_PATH = "/oauth/token"  # noqa: S105 (a path, not a secret)
AUTH_METHODS = ("client_secret_basic", "client_secret_post")
FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"


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
        return endpoint == "token" and method in AUTH_METHODS

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


class AccessTokenGenerator(JWTBearerTokenGenerator):  # type: ignore[misc]
    """RFC 9068: typ at+jwt, ES256 with the active key's kid; aud = the client's APIs."""

    def __init__(self, issuer: str, keys: KeyStore) -> None:
        super().__init__(issuer, alg=ALGORITHM, expires_generator=TOKEN_LIFETIME_SECONDS)
        self.keys = keys

    def get_jwks(self) -> Any:
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
    def __init__(self, registry: ClientRegistry, issuer: str, keys: KeyStore) -> None:
        super().__init__(scopes_supported=list(ALL_SCOPES))
        self.registry = registry
        # The endpoint's canonical URL: Authlib refuses plain http unless it is loopback.
        self.token_uri = issuer.rstrip("/") + TOKEN_PATH
        if not is_secure_transport(self.token_uri):
            log.warning(
                "issuer %s is neither https nor loopback: every token request will be refused "
                "(insecure_transport) unless AUTHLIB_INSECURE_TRANSPORT=1",
                issuer,
            )
        self.register_grant(ClientCredentialsGrant)
        self.register_token_generator("default", AccessTokenGenerator(issuer, keys))

    # -- Authlib callbacks -------------------------------------------------------------
    def query_client(self, client_id: str) -> OAuthClient:
        return OAuthClient(client_id, self.registry.get(client_id))

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        client = request.client
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
            error.status_code = 401  # one answer for every failed client authentication
        return super().handle_error_response(request, error)  # type: ignore[no-any-return]

    # -- the entry point (sync: run it in a worker thread) --------------------------------
    def token_response(self, body: bytes, headers: Mapping[str, str]) -> Response[Any]:
        try:
            request = self._parse(body, headers)
            return self.create_token_response(request)  # type: ignore[no-any-return]
        except OAuth2Error as error:
            return self.handle_error_response(None, error)

    def _parse(self, body: bytes, headers: Mapping[str, str]) -> FormRequest:
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
        if not payload.grant_type:
            raise InvalidRequestError("Missing 'grant_type' parameter.")
        return FormRequest(self.token_uri, headers, payload)
