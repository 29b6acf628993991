"""``POST /oauth/token``, ``/oauth/introspect``, ``/oauth/revoke``, the revocation list
verifiers poll, ``GET /.well-known/jwks.json`` and the RFC 8414 metadata."""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from litestar import Request, Response, get, post
from litestar.params import Parameter

from gateway.oauth.assertion import ASSERTION_ALGORITHMS
from gateway.oauth.keys import ALGORITHM, KeyStore
from gateway.oauth.server import (
    AUTH_METHODS,
    INTROSPECT_PATH,
    REVOKE_PATH,
    TOKEN_PATH,
    TallyAuthorizationServer,
)
from shared.auth.revocation import REVOCATIONS_PATH, RevocationPage, RevokedToken
from shared.topology import ALL_SCOPES

# Each argon2 check holds 19 MiB (registry.HASHER) and a core for ~20 ms: two at a
# time use both cores, and more only add memory the allocator keeps (eight at once took
# the gateway from 135 to 305 MB resident at the start of a simulated day).
TOKEN_CONCURRENCY = 2
FORM_LIMIT = 16 * 1024
AUTH_HELP = (
    "Authenticate with HTTP Basic (client_secret_basic), with client_id and "
    "client_secret in the form (client_secret_post), or with a signed client assertion "
    "(private_key_jwt, RFC 7523: client_assertion_type="
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer&client_assertion=<JWT>; "
    "exp at most one hour ahead, aud the token endpoint URL, the issuer or this "
    "endpoint's URL, a jti used once). A refusal's error_description says why."
)


def oauth_routes(server: TallyAuthorizationServer, keys: KeyStore, issuer: str) -> list[Any]:
    limiter = anyio.CapacityLimiter(TOKEN_CONCURRENCY)
    base = issuer.rstrip("/")

    @post(
        TOKEN_PATH,
        tags=["oauth"],
        summary="Issue an access token (client credentials)",
        description=(
            f"RFC 6749 client credentials grant. {AUTH_HELP} Body: "
            "application/x-www-form-urlencoded `grant_type=client_credentials[&scope=...]`. "
            "Answers an RFC 9068 JWT (ES256, 15 minutes by default); errors are RFC 6749 JSON."
        ),
        request_max_body_size=FORM_LIMIT,
    )
    async def token(request: Request[Any, Any, Any]) -> Response[Any]:
        body = await request.body()
        return await anyio.to_thread.run_sync(
            server.token_response, body, request.headers, limiter=limiter
        )

    @post(
        INTROSPECT_PATH,
        tags=["oauth"],
        summary="Introspect an access token (RFC 7662; resource servers only)",
        description=(
            f"{AUTH_HELP} Only internal resource servers may call it (403 otherwise). Body: "
            "`token=<access token>[&token_type_hint=access_token]`. Answers the token's "
            'claims with `"active": true`, or `{"active": false}` for an expired, revoked, '
            "tampered or unknown token."
        ),
        request_max_body_size=FORM_LIMIT,
        status_code=200,
    )
    async def introspect(request: Request[Any, Any, Any]) -> Response[Any]:
        body = await request.body()
        return await anyio.to_thread.run_sync(
            server.endpoint_response, "introspection", INTROSPECT_PATH, body, request.headers,
            limiter=limiter,
        )  # fmt: skip

    @post(
        REVOKE_PATH,
        tags=["oauth"],
        summary="Revoke one of the caller's access tokens (RFC 7009)",
        description=(
            f"{AUTH_HELP} Body: `token=<access token>[&token_type_hint=access_token]`. "
            "200 whether or not the token was known (RFC 7009); the gateway and every "
            "service refuse a revoked token within about a second, until it expires."
        ),
        request_max_body_size=FORM_LIMIT,
        status_code=200,
    )
    async def revoke(request: Request[Any, Any, Any]) -> Response[Any]:
        body = await request.body()
        return await anyio.to_thread.run_sync(
            server.endpoint_response, "revocation", REVOKE_PATH, body, request.headers,
            limiter=limiter,
        )  # fmt: skip

    @get(REVOCATIONS_PATH, tags=["oauth"], sync_to_thread=True)
    def revocations(
        after: Annotated[int, Parameter(ge=0, le=2**62, description="The cursor last seen.")] = 0,
    ) -> Response[RevocationPage]:
        """Revoked access tokens not yet expired, numbered above `after` (what every
        verifier polls, decision 0011). Holds only random token ids and their expiry."""
        page = server.store.revocations_after(after)
        body = RevocationPage(
            store_id=page.store_id,
            items=[RevokedToken(jti=jti, exp=exp) for _, jti, exp in page.items],
            cursor=page.cursor,
            has_more=page.has_more,
        )
        return Response(body, headers={"Cache-Control": "no-store"})

    @get("/.well-known/jwks.json", tags=["oauth"], sync_to_thread=False)
    def jwks() -> Response[dict[str, Any]]:
        """The public signing keys (RFC 7517): the active one and those rotated out
        whose tokens may still be live. Verifiers fetch again on an unknown kid."""
        return Response(keys.public_jwks(), headers={"Cache-Control": "public, max-age=60"})

    @get("/.well-known/oauth-authorization-server", tags=["oauth"], sync_to_thread=False)
    def metadata() -> dict[str, Any]:
        """RFC 8414 authorization server metadata."""
        return {
            "issuer": issuer,
            "token_endpoint": base + TOKEN_PATH,
            "introspection_endpoint": base + INTROSPECT_PATH,
            "revocation_endpoint": base + REVOKE_PATH,
            "jwks_uri": base + "/.well-known/jwks.json",
            "grant_types_supported": ["client_credentials"],
            "response_types_supported": [],
            "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
            "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGORITHMS,
            "introspection_endpoint_auth_methods_supported": list(AUTH_METHODS),
            "revocation_endpoint_auth_methods_supported": list(AUTH_METHODS),
            "scopes_supported": list(ALL_SCOPES),
            "access_token_signing_alg_values_supported": [ALGORITHM],
            "service_documentation": base + "/contracts",
        }

    return [token, introspect, revoke, revocations, jwks, metadata]
