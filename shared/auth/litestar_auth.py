"""Litestar wiring: the authentication middleware, per-route scope guards, and the
OAuth 2 security scheme that puts each route's scopes into the OpenAPI document."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.middleware import (
    AbstractAuthenticationMiddleware,
    AuthenticationResult,
    DefineMiddleware,
)
from litestar.openapi.spec import Components, OAuthFlow, OAuthFlows, SecurityScheme

from shared.auth.principal import Principal
from shared.auth.verifier import (
    AudienceNotGranted,
    InvalidToken,
    KeysUnavailable,
    TokenVerifier,
)
from shared.problems import ProblemError

PUBLIC_PATHS = ["^/healthz$", "^/readyz$", "^/metrics$", "^/schema"]


def _unauthorized(detail: str, error: str = "invalid_token") -> ProblemError:
    return ProblemError(
        401,
        "unauthorized",
        detail,
        headers={"WWW-Authenticate": f'Bearer error="{error}", error_description="{detail}"'},
    )


def _audience_not_granted(detail: str, required: str | None) -> ProblemError:
    """A good token without this API in its audience: the grant is missing (403), as
    for a missing scope, so a partner tells "wrong token" (401) from "no grant"."""
    challenge = f'Bearer error="insufficient_scope", error_description="{detail}"'
    if required is not None:
        challenge += f', scope="{required}"'
    return ProblemError(403, "insufficient-scope", detail, headers={"WWW-Authenticate": challenge})


class BearerAuthMiddleware(AbstractAuthenticationMiddleware):
    """Authentication, then the route's scope (``requires``): one step per request.

    The scope is checked here rather than by a Litestar guard because a guard receives
    a copy of the route handler, made on every request (10 µs, a tenth of an
    allocation's CPU)."""

    def __init__(self, app: Any, verifier: TokenVerifier, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.verifier = verifier

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        scope = connection.scope
        header = _authorization(scope["headers"])
        if not header:
            raise ProblemError(
                401,
                "unauthorized",
                "An access token is required (Authorization: Bearer ...).",
                headers={"WWW-Authenticate": 'Bearer realm="tally"'},
            )
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthorized(
                "The Authorization header must be 'Bearer <token>'.", "invalid_request"
            )
        required = scope["route_handler"].opt.get(REQUIRED_SCOPE)
        try:
            principal = await self.verifier.verify(token.strip())
        except AudienceNotGranted as exc:
            raise _audience_not_granted(str(exc), required) from exc
        except InvalidToken as exc:
            raise _unauthorized(str(exc)) from exc
        except KeysUnavailable as exc:
            raise ProblemError(
                503, "downstream-unavailable", str(exc), headers={"Retry-After": "1"}
            ) from exc
        if required is not None:
            authorize(principal, required)
        return AuthenticationResult(user=principal, auth=principal)


def _authorization(raw_headers: Any) -> str | None:
    for name, value in raw_headers:
        if name == b"authorization":
            decoded: str = value.decode("latin-1")
            return decoded
    return None


def bearer_auth(verifier: TokenVerifier) -> DefineMiddleware:
    return DefineMiddleware(BearerAuthMiddleware, verifier=verifier, exclude=PUBLIC_PATHS)


# System APIs (ADR 0014) know no customers: a client bound to one never reaches them.
SYSTEM_API_SCOPE_PREFIXES = ("erp:", "wms:")
REQUIRED_SCOPE = "required_scope"


def is_admin_scope(scope: str) -> bool:
    """The superscope and every API's administration scope (``inventory:admin``, ...):
    configuration, never granted to a client bound to a customer (ADR 0021)."""
    return scope == "admin" or scope.endswith(":admin")


def authorize(principal: Principal, scope: str) -> None:
    """Raises the 403 problem when ``principal`` may not use a route requiring ``scope``."""
    if not principal.has_scope(scope) or (
        principal.customer_id is not None and is_admin_scope(scope)
    ):
        raise ProblemError(
            403,
            "insufficient-scope",
            f"This operation requires the '{scope}' scope.",
            headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope}"'},
        )
    if principal.customer_id is not None and scope.startswith(SYSTEM_API_SCOPE_PREFIXES):
        raise ProblemError(
            403,
            "internal-api",
            "System APIs serve the platform's services; a client bound to a customer "
            "reads its orders and shipments through the orders API.",
        )


def requires(scope: str) -> dict[str, Any]:
    """Route keyword arguments: ``@get("/x", **requires("orders:read"))``. The
    authentication middleware enforces the scope; the security entry documents it."""
    return {"opt": {REQUIRED_SCOPE: scope}, "security": [{"oauth2": [scope]}]}


def security_components(token_url: str, scopes: tuple[str, ...]) -> Components:
    return Components(
        security_schemes={
            "oauth2": SecurityScheme(
                type="oauth2",
                description="OAuth 2 client credentials; the gateway issues RFC 9068 JWTs.",
                flows=OAuthFlows(
                    client_credentials=OAuthFlow(token_url=token_url, scopes={s: s for s in scopes})
                ),
            )
        }
    )
