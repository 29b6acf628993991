"""The gateway's front door: checks the edge policies, routes on the first path
segment, verifies the bearer token of REST calls, and hands everything else to the
Litestar app. One pass over the request headers, one ``send`` wrapper per call.

For every call, in order: header size (431), CORS preflight (204/403, answered here),
then by path:
- ``/{api}/v{major}/...``: the major's status from ``versions.py`` (unknown 404,
  retired 410, deprecated adds Deprecation/Sunset/Link), token verified here
  (401; 403 insufficient_scope for a good token whose audience lacks the api),
  rate limit of the client's tier (429), body size (413), then forwarded unchanged
  with the route's timeout (504).
- ``/graphql``: forwarded for the portal to verify; a token that verifies here is
  rate limited like a REST call. A WebSocket on ``/graphql`` (the portal's
  subscriptions) is verified here, then relayed frame by frame (sockets.py).
- ``/{unknown}/v{n}/...``: 404; anything else: the Litestar app.
Every call but the probes goes to the audit log.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send

from gateway.audit.log import AuditLog
from gateway.audit.store import AuditEntry
from gateway.policies.cors import Cors
from gateway.policies.rate_limits import RateLimits
from gateway.policies.timeouts import UpstreamTimeouts
from gateway.routing.forwarder import Forwarder
from gateway.routing.problems import send_problem
from gateway.routing.sockets import SocketRelay
from gateway.routing.versions import VersionRoute, version_routes
from shared.auth.principal import Principal
from shared.auth.verifier import AudienceNotGranted, InvalidToken, TokenVerifier
from shared.correlation import correlation_id

GRAPHQL_API = "graphql"
MAX_HEADER_COUNT = 100
_VERSIONED = re.compile(r"^/[^/]+/v\d+(/|$)")
# Probes, and the key and revocation lists every verifier polls each second.
_NOT_AUDITED = frozenset(
    {"/healthz", "/readyz", "/metrics", "/.well-known/jwks.json", "/oauth/revocations"}
)

Fields = list[tuple[bytes, bytes]]


@dataclass(slots=True)
class EdgePolicies:
    rate_limits: RateLimits
    cors: Cors = field(default_factory=lambda: Cors(()))
    timeouts: UpstreamTimeouts = field(default_factory=lambda: UpstreamTimeouts({}))
    audit: AuditLog | None = None
    max_body_bytes: int = 1_048_576
    max_header_bytes: int = 16_384
    versions: dict[str, dict[str, VersionRoute]] = field(default_factory=version_routes)


class _Request:
    """What the one pass over the headers found."""

    __slots__ = ("auth", "content_length", "cors_headers", "cors_method", "count", "origin", "size")

    def __init__(self, headers: Iterable[tuple[bytes, bytes]]) -> None:
        self.auth: bytes | None = None
        self.origin: bytes | None = None
        self.content_length: bytes | None = None
        self.cors_method: bytes | None = None
        self.cors_headers: bytes | None = None
        size = count = 0
        for name, value in headers:
            size += len(name) + len(value)
            count += 1
            if name == b"authorization":
                self.auth = value
            elif name == b"content-length":
                self.content_length = value
            elif name == b"origin":
                self.origin = value
            elif name == b"access-control-request-method":
                self.cors_method = value
            elif name == b"access-control-request-headers":
                self.cors_headers = value
        self.size = size
        self.count = count


class GatewayRouter:
    def __init__(
        self,
        app: ASGIApp,
        forwarder: Forwarder,
        upstreams: dict[str, str],
        verifiers: dict[str, TokenVerifier],
        policies: EdgePolicies,
    ) -> None:
        """``upstreams``: API name -> base URL (the portal's under ``graphql``);
        ``verifiers``: API name -> verifier, for every REST API and ``graphql``."""
        self.app = app
        self.forwarder = forwarder
        self.upstreams = upstreams
        self.verifiers = verifiers
        self.policies = policies
        self.versions = policies.versions
        graphql = upstreams.get(GRAPHQL_API)
        verifier = verifiers.get(GRAPHQL_API)
        self.sockets = (
            SocketRelay(graphql, verifier, policies.rate_limits, policies.audit)
            if graphql is not None and verifier is not None
            else None
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            if (
                self.sockets is not None
                and scope["type"] == ScopeType.WEBSOCKET
                and (scope["path"] == "/graphql")
            ):
                await self.sockets(scope, receive, send)  # the portal's subscriptions
                return
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request = _Request(scope["headers"])
        extra: Fields = []
        if request.origin is not None and request.cors_method is None:
            extra = self.policies.cors.answer_fields(request.origin)
        status = 0

        async def answer(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if extra:
                    headers = list(message.get("headers", ()))
                    present = {name.lower() for name, _ in headers}
                    # A service that already says it (v1 deprecation fields) is not repeated.
                    headers.extend(f for f in extra if f[0].lower() not in present)
                    message["headers"] = headers
            await send(message)

        try:
            await self._route(scope, receive, answer, request, extra)
        finally:
            audit = self.policies.audit
            if audit is not None and scope["path"] not in _NOT_AUDITED:
                self._audit(audit, scope, status or 500, started)

    def _audit(self, audit: AuditLog, scope: HTTPScope, status: int, started: float) -> None:
        elapsed_ms = (time.perf_counter() - started) * 1000
        principal = scope.get("state", {}).get("principal")
        audit.record(
            AuditEntry(
                at=time.time() - elapsed_ms / 1000,
                client_id=principal.client_id if principal else None,
                customer_id=principal.customer_id if principal else None,
                method=scope["method"],
                route=scope.get("path_template") or scope["path"],
                path=scope["path"],
                status=status,
                latency_ms=elapsed_ms,
                correlation_id=correlation_id.get(),
            )
        )

    async def _route(
        self, scope: HTTPScope, receive: Receive, send: Send, request: _Request, extra: Fields
    ) -> None:
        path = scope["path"]
        policies = self.policies
        if request.size > policies.max_header_bytes or request.count > MAX_HEADER_COUNT:
            detail = (
                f"The request headers exceed {policies.max_header_bytes} bytes"
                f" or {MAX_HEADER_COUNT} fields."
            )
            await send_problem(send, 431, detail, slug="headers-too-large", instance=path)
            return
        if scope["method"] == "OPTIONS" and request.cors_method is not None:
            await self._preflight(send, request, path)
            return
        api, _, rest = path[1:].partition("/")
        versions = self.versions.get(api)
        if versions is not None and api in self.upstreams:
            await self._rest(
                api, versions, rest.partition("/")[0], scope, receive, send, request, extra
            )
        elif api == GRAPHQL_API and GRAPHQL_API in self.upstreams:
            scope["path_template"] = "/graphql"
            await self._graphql(scope, receive, send, request, extra)
        elif _VERSIONED.match(path):
            apis = ", ".join(sorted(self.upstreams))
            detail = f"No API named '{api}' (known: {apis}); see /contracts."
            await send_problem(send, 404, detail, slug="unknown-api", instance=path)
        else:
            await self.app(scope, receive, send)

    async def _preflight(self, send: Send, request: _Request, path: str) -> None:
        assert request.cors_method is not None
        fields, why = self.policies.cors.preflight(
            request.origin, request.cors_method, request.cors_headers
        )
        if fields is None:
            await send_problem(send, 403, why, slug="cors-refused", instance=path)
            return
        await send({"type": "http.response.start", "status": 204, "headers": fields})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _rest(
        self,
        api: str,
        versions: dict[str, VersionRoute],
        version: str,
        scope: HTTPScope,
        receive: Receive,
        send: Send,
        request: _Request,
        extra: Fields,
    ) -> None:
        path = scope["path"]
        route = versions.get(version)
        if route is None:
            served = ", ".join(label for label, known in versions.items() if not known.retired)
            detail = f"The {api} API has no version '{version}'; served: {served}."
            await send_problem(send, 404, detail, slug="unknown-api-version", instance=path)
            return
        scope["path_template"] = route.template
        extra += route.fields
        if route.retired:
            await send_problem(send, 410, route.detail, slug="api-version-retired", instance=path)
            return
        principal = await self._authenticate(self.verifiers[api], scope, send, request.auth)
        if principal is None:
            return
        if not await self._admit(principal, scope, send, request, extra):
            return
        await self.forwarder.forward(
            scope,
            receive,
            send,
            self.upstreams[api],
            api,
            upstream_timeout=self.policies.timeouts.for_call(api, path),
            max_body=self.policies.max_body_bytes,
        )

    async def _graphql(
        self, scope: HTTPScope, receive: Receive, send: Send, request: _Request, extra: Fields
    ) -> None:
        verifier = self.verifiers.get(GRAPHQL_API)
        if request.auth is not None and verifier is not None:
            principal = await self._principal(verifier, request.auth)
            if isinstance(principal, Principal):
                scope.setdefault("state", {})["principal"] = principal
                if not await self._admit(principal, scope, send, request, extra):
                    return
        await self.forwarder.forward(
            scope,
            receive,
            send,
            self.upstreams[GRAPHQL_API],
            GRAPHQL_API,
            upstream_timeout=self.policies.timeouts.for_call(GRAPHQL_API, scope["path"]),
            max_body=self.policies.max_body_bytes,
        )

    async def _admit(
        self,
        principal: Principal,
        scope: HTTPScope,
        send: Send,
        request: _Request,
        extra: Fields,
    ) -> bool:
        """Rate limit, then the declared body size; False when a problem was sent."""
        path = scope["path"]
        checked = await self.policies.rate_limits.check(principal)
        if checked is not None:
            decision, fields = checked
            extra += fields
            if not decision.allowed:
                detail = (
                    f"Rate limit of client {principal.client_id} exceeded"
                    f" ({decision.limit} calls per window); retry in {decision.retry_after} s."
                )
                await send_problem(send, 429, detail, slug="rate-limited", instance=path)
                return False
        if request.content_length is not None:
            limit = self.policies.max_body_bytes
            try:
                declared = int(request.content_length)
            except ValueError:
                declared = -1
            if declared < 0 or declared > limit:
                detail = f"The request body is larger than {limit} bytes."
                if declared < 0:
                    detail = "The Content-Length header is not a number."
                await send_problem(send, 413 if declared >= 0 else 400, detail, instance=path)
                return False
        return True

    async def _principal(
        self, verifier: TokenVerifier, header: bytes
    ) -> Principal | tuple[str, str]:
        """The verified principal, else (detail, WWW-Authenticate challenge)."""
        scheme, _, token = header.decode("latin-1").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            detail = "The Authorization header must be 'Bearer <token>'."
            return detail, f'Bearer error="invalid_request", error_description="{detail}"'
        try:
            return await verifier.verify(token)
        except AudienceNotGranted as exc:  # a good token without this API's grant: 403
            detail = str(exc)
            return detail, f'Bearer error="insufficient_scope", error_description="{detail}"'
        except InvalidToken as exc:
            detail = str(exc)
            return detail, f'Bearer error="invalid_token", error_description="{detail}"'

    async def _authenticate(
        self, verifier: TokenVerifier, scope: HTTPScope, send: Send, header: bytes | None
    ) -> Principal | None:
        """The principal (also put in ``scope["state"]``), or None once a 401 is sent."""
        if header is None:
            result: Principal | tuple[str, str] = (
                "An access token is required (Authorization: Bearer ...).",
                'Bearer realm="tally"',
            )
        else:
            result = await self._principal(verifier, header)
        if isinstance(result, Principal):
            scope.setdefault("state", {})["principal"] = result
            return result
        detail, challenge = result
        lacks_grant = challenge.startswith('Bearer error="insufficient_scope"')
        await send_problem(
            send,
            403 if lacks_grant else 401,
            detail,
            slug="insufficient-scope" if lacks_grant else "unauthorized",
            instance=scope["path"],
            headers={"WWW-Authenticate": challenge},
        )
        return None
