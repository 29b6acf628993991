"""The gateway's front door: routes on the first path segment, verifies the bearer
token of REST calls, and hands everything else to the Litestar app.

- ``/{api}/v1/...`` for the REST APIs: token verified here (audience = api), then
  forwarded unchanged (the services serve the same paths and verify again).
- ``/graphql`` (GraphiQL on GET, queries on POST): forwarded; the portal verifies.
- ``/{unknown}/v{n}/...`` and unknown majors: 404 problem+json.
"""

from __future__ import annotations

import re

from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPScope, Receive, Scope, Send

from gateway.routing.forwarder import Forwarder
from gateway.routing.problems import send_problem
from shared.auth.verifier import InvalidToken, TokenVerifier

SUPPORTED_VERSIONS = ("v1",)
GRAPHQL_API = "graphql"
_VERSIONED = re.compile(r"^/[^/]+/v\d+(/|$)")


class GatewayRouter:
    def __init__(
        self,
        app: ASGIApp,
        forwarder: Forwarder,
        upstreams: dict[str, str],
        verifiers: dict[str, TokenVerifier],
    ) -> None:
        """``upstreams``: API name -> base URL (the portal's under ``graphql``);
        ``verifiers``: API name -> verifier, for every REST API."""
        self.app = app
        self.forwarder = forwarder
        self.upstreams = upstreams
        self.verifiers = verifiers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        api, _, rest = path[1:].partition("/")
        if api == GRAPHQL_API and GRAPHQL_API in self.upstreams:
            scope["path_template"] = "/graphql"
            await self.forwarder.forward(scope, receive, send, self.upstreams[api], api)
        elif api in self.verifiers:
            await self._rest(api, rest.partition("/")[0], scope, receive, send)
        elif _VERSIONED.match(path):
            apis = ", ".join(sorted(self.upstreams))
            await send_problem(
                send,
                404,
                f"No API named '{api}' (known: {apis}); see /contracts.",
                slug="unknown-api",
                instance=path,
            )
        else:
            await self.app(scope, receive, send)

    async def _rest(
        self, api: str, version: str, scope: HTTPScope, receive: Receive, send: Send
    ) -> None:
        if version not in SUPPORTED_VERSIONS:
            await send_problem(
                send,
                404,
                f"The {api} API has no version '{version}'; served: {', '.join(SUPPORTED_VERSIONS)}.",
                slug="unknown-api-version",
                instance=scope["path"],
            )
            return
        scope["path_template"] = f"/{api}/{version}/{{path}}"
        problem = await self._authenticate(api, scope)
        if problem is not None:
            detail, challenge = problem
            await send_problem(
                send,
                401,
                detail,
                slug="unauthorized",
                instance=scope["path"],
                headers={"WWW-Authenticate": challenge},
            )
            return
        await self.forwarder.forward(scope, receive, send, self.upstreams[api], api)

    async def _authenticate(self, api: str, scope: HTTPScope) -> tuple[str, str] | None:
        """None when the token is good for ``api``, else (detail, WWW-Authenticate)."""
        header = next((v for k, v in scope["headers"] if k == b"authorization"), None)
        if header is None:
            return (
                "An access token is required (Authorization: Bearer ...).",
                'Bearer realm="tally"',
            )
        scheme, _, token = header.decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            detail = "The Authorization header must be 'Bearer <token>'."
            return detail, f'Bearer error="invalid_request", error_description="{detail}"'
        try:
            principal = await self.verifiers[api].verify(token.strip())
        except InvalidToken as exc:
            detail = str(exc)
            return detail, f'Bearer error="invalid_token", error_description="{detail}"'
        scope.setdefault("state", {})["principal"] = principal  # for rate limits and audit
        return None
