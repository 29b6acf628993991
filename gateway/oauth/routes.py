"""``POST /oauth/token``, ``GET /.well-known/jwks.json`` and the RFC 8414 metadata."""

from __future__ import annotations

from typing import Any

import anyio
from litestar import Request, Response, get, post

from gateway.oauth.keys import ALGORITHM, KeyStore
from gateway.oauth.server import AUTH_METHODS, TOKEN_PATH, TallyAuthorizationServer
from shared.topology import ALL_SCOPES

# argon2 checks take memory and CPU; a handful at a time is plenty for 15-minute tokens.
TOKEN_CONCURRENCY = 8


def oauth_routes(server: TallyAuthorizationServer, keys: KeyStore, issuer: str) -> list[Any]:
    limiter = anyio.CapacityLimiter(TOKEN_CONCURRENCY)
    base = issuer.rstrip("/")

    @post(
        TOKEN_PATH,
        tags=["oauth"],
        summary="Issue an access token (client credentials)",
        description=(
            "RFC 6749 client credentials grant. Authenticate with HTTP Basic "
            "(client_secret_basic) or with client_id and client_secret in the form "
            "(client_secret_post). Body: application/x-www-form-urlencoded "
            "`grant_type=client_credentials[&scope=...]`. Answers an RFC 9068 JWT "
            "(ES256, 15 minutes); errors are RFC 6749 JSON."
        ),
        request_max_body_size=16 * 1024,
    )
    async def token(request: Request[Any, Any, Any]) -> Response[Any]:
        body = await request.body()
        return await anyio.to_thread.run_sync(
            server.token_response, body, request.headers, limiter=limiter
        )

    @get("/.well-known/jwks.json", tags=["oauth"], sync_to_thread=False)
    def jwks() -> Response[dict[str, Any]]:
        """The public signing keys (RFC 7517); verifiers refresh on an unknown kid."""
        return Response(keys.public_jwks(), headers={"Cache-Control": "public, max-age=300"})

    @get("/.well-known/oauth-authorization-server", tags=["oauth"], sync_to_thread=False)
    def metadata() -> dict[str, Any]:
        """RFC 8414 authorization server metadata."""
        return {
            "issuer": issuer,
            "token_endpoint": base + TOKEN_PATH,
            "jwks_uri": base + "/.well-known/jwks.json",
            "grant_types_supported": ["client_credentials"],
            "response_types_supported": [],
            "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
            "scopes_supported": list(ALL_SCOPES),
            "access_token_signing_alg_values_supported": [ALGORITHM],
            "service_documentation": base + "/contracts",
        }

    return [token, jwks, metadata]
