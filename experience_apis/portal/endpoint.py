"""``/graphql``: strawberry's Litestar controller, adjusted to the platform's rules.

- GET serves the explorer only (GraphiQL from this package, experience_apis/portal/
  explorer), and without a token (a browser cannot send one): ``GET /graphql`` in a
  browser and ``/graphql/explorer`` give the page, ``/graphql/explorer/assets/...``
  its files, ``/graphql/explorer/operations.json`` the example operations. Each opts
  out of the kernel's bearer middleware via ``opt={"exclude_from_auth": True}``; no
  GET runs a query (400 problem+json), so nothing runs unauthenticated. Every
  explorer answer carries a strict Content-Security-Policy.
- Each operation runs under the app's guard (limits/: depth, tokens, aliases, cost,
  persisted queries, introspection, masking), built once from the app's settings.
- POST carries every operation. The kernel's bearer middleware has verified the token
  (401 problem+json otherwise; 403 ``insufficient_scope`` for a good token not issued
  for the portal, decision 0023) and the ``portal`` scope guard runs before GraphQL
  (403 problem+json otherwise).
- The WebSocket at ``/graphql`` carries subscriptions (graphql-transport-ws only,
  decision 0038). It opens without the bearer middleware (a browser cannot send
  headers on an upgrade); the token comes in ``connection_init`` (or the upgrade's
  Authorization header) and is verified there with the same verifier and the
  ``portal`` scope (subscriptions/connection.py: 4401/4403 otherwise); nothing runs
  before. Every operation on the socket runs under the same guard as POST.
- Bodies above 64 KiB are 413 problem+json before strawberry reads them.
- Transport errors strawberry reports (bad JSON, no query, query over GET) are
  problem+json like every other error of the platform.
- The POST body passes the kernel's strict JSON checks first (``JSON_BODY``,
  decision 0022): 415 for another media type, 400 for invalid UTF-8, duplicate keys
  or deep nesting.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast
from weakref import WeakKeyDictionary

import msgspec
from cross_web import HTTPException
from litestar import Request, Response, WebSocket, get, post, websocket
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.status_codes import HTTP_200_OK
from strawberry.litestar import make_graphql_controller
from strawberry.litestar.controller import LitestarWebSocketAdapter
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from experience_apis.portal import explorer
from experience_apis.portal.context import portal_context
from experience_apis.portal.limits import Guard, guarding
from experience_apis.portal.schema import schema
from experience_apis.portal.subscriptions.connection import (
    REQUIRED_SCOPE as SUBSCRIPTION_SCOPE,
)
from experience_apis.portal.subscriptions.connection import (
    SubscriptionContext,
    accept,
    close_code,
)
from experience_apis.portal.subscriptions.lifespan import hub_of
from experience_apis.portal.subscriptions.registered import RegisteredOnlyTransport
from shared.auth.litestar_auth import requires
from shared.problems import problem_response, problem_responses
from shared.request_body import JSON_BODY
from shared.service import Runtime

GRAPHQL_PATH = "/graphql"
MAX_QUERY_BODY_BYTES = 64 * 1024  # a query bigger than this is an attack, not a portal (413)
PUBLIC = {"exclude_from_auth": True}

_guards: WeakKeyDictionary[Runtime, Guard] = WeakKeyDictionary()


def guard_of(runtime: Runtime) -> Guard:
    """The app's guard, built from its settings on first use (the registry is read then)."""
    guard = _guards.get(runtime)
    if guard is None:
        guard = _guards[runtime] = Guard.from_settings(runtime.settings)
    return guard


def _explorer_page() -> Response[str]:
    nonce = explorer.new_nonce()
    return Response(
        content=explorer.page(nonce, endpoint=GRAPHQL_PATH),
        media_type="text/html",
        headers={
            "Content-Security-Policy": explorer.content_security_policy(nonce),
            "Cache-Control": "no-store",
            **explorer.SECURITY_HEADERS,
        },
    )


_StrawberryController = make_graphql_controller(
    schema,
    path=GRAPHQL_PATH,
    graphql_ide=None,  # the explorer below, not strawberry's CDN-loaded page
    allow_queries_via_get=False,
    context_getter=portal_context,
    multipart_uploads_enabled=False,
    subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
    connection_init_wait_timeout=timedelta(seconds=10),
    max_subscriptions_per_connection=20,
)


_JSON = msgspec.json.Encoder()


class _PortalSocket(LitestarWebSocketAdapter):
    async def close(self, code: int, reason: str) -> None:
        await super().close(*close_code(self.ws, code, reason))


class PortalGraphQL(_StrawberryController):  # type: ignore[misc,valid-type]
    opt = {JSON_BODY: True}  # the POST body is JSON that strawberry reads itself
    websocket_adapter_class = _PortalSocket
    graphql_transport_ws_handler_class = RegisteredOnlyTransport

    # The bearer middleware is off (the token comes in connection_init, see above);
    # connection.py checks the token and this scope itself.
    @websocket(opt={**PUBLIC, **requires(SUBSCRIPTION_SCOPE)["opt"]})
    async def websocket_endpoint(
        self, socket: WebSocket[Any, Any, Any], runtime: NamedDependency[Runtime]
    ) -> None:
        context = SubscriptionContext(websocket=socket, runtime=runtime, hub=hub_of(runtime))
        try:
            with guarding(guard_of(runtime)):
                await self.run(request=socket, context=context, root_value=None)
        finally:
            context.end()

    async def on_ws_connect(self, context: Any) -> None:
        await accept(context)

    @get(opt=PUBLIC, include_in_schema=False)
    async def handle_http_get(self, request: Request[Any, Any, Any]) -> Response[Any]:
        """The explorer in a browser (no token needed); nothing runs over GET."""
        if "text/html" in request.headers.get("accept", ""):
            return _explorer_page()
        return problem_response(
            400,
            "GET /graphql runs no operation: POST it with a token "
            "(the explorer is at /graphql/explorer).",
            instance=request.url.path,
        )

    @get("/explorer", opt=PUBLIC, include_in_schema=False, name="portal-explorer")
    async def explorer_page(self) -> Response[str]:
        """GraphiQL, served from this package, under a strict Content-Security-Policy."""
        return _explorer_page()

    @get("/explorer/assets/{asset:str}", opt=PUBLIC, include_in_schema=False)
    async def explorer_asset(
        self, request: Request[Any, Any, Any], asset: FromPath[str]
    ) -> Response[Any]:
        accepts_gzip = "gzip" in request.headers.get("accept-encoding", "")
        found = explorer.asset(asset, accepts_gzip=accepts_gzip)
        if found is None:
            return problem_response(404, f"No explorer asset '{asset}'.", instance=request.url.path)
        headers = {
            "Content-Security-Policy": explorer.content_security_policy(),
            "Cache-Control": found.cache_control,
            "Vary": "Accept-Encoding",
            **explorer.SECURITY_HEADERS,
        }
        if found.gzipped:
            headers["Content-Encoding"] = "gzip"
        return Response(content=found.body, media_type=found.media_type, headers=headers)

    @get("/explorer/operations.json", opt=PUBLIC, include_in_schema=False)
    async def explorer_operations(
        self, runtime: NamedDependency[Runtime]
    ) -> Response[list[dict[str, Any]]]:
        """The example operations (the registered ones), for the explorer's tabs."""
        return Response(
            content=explorer.operations(guard_of(runtime).registry),
            headers={
                "Content-Security-Policy": explorer.content_security_policy(),
                "Cache-Control": "no-cache",
                **explorer.SECURITY_HEADERS,
            },
        )

    @post(
        status_code=HTTP_200_OK,
        operation_id="graphql",
        summary="Run a GraphQL query (see contracts/graphql/portal.graphql)",
        request_max_body_size=MAX_QUERY_BODY_BYTES,
        responses=problem_responses(413),
        **requires("portal"),
    )
    async def handle_http_post(
        self,
        request: Request[Any, Any, Any],
        context: NamedDependency[Any],
        root_value: NamedDependency[Any],
        response: NamedDependency[Response[Any]],
        runtime: NamedDependency[Runtime],
    ) -> Response[Any]:
        self.temporal_response = response
        with guarding(guard_of(runtime)):
            return await self.execute_request(
                request=request, context=context, root_value=root_value
            )

    def encode_json(self, data: object) -> str:
        """msgspec, not the stdlib: a 50-order answer is ~100 KB of JSON. A str, because
        the WebSocket transport sends this as a text frame."""
        return _JSON.encode(data).decode()

    def parse_json(self, data: str | bytes) -> Any:
        """A body that is JSON but not an object (a string, a number, null) is a 400
        problem like any other malformed request, not strawberry's AttributeError."""
        parsed = super().parse_json(data)
        if not isinstance(parsed, (dict, list)):
            raise HTTPException(
                400,
                "The body must be a JSON object: {query, variables, operationName, extensions}.",
            )
        return parsed

    async def execute_request(
        self, request: Request[Any, Any, Any], context: Any, root_value: Any
    ) -> Response[Any]:
        try:
            return cast(
                "Response[Any]", await self.run(request, context=context, root_value=root_value)
            )
        except HTTPException as exc:
            return problem_response(exc.status_code, exc.reason, instance=request.url.path)
