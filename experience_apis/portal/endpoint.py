"""``/graphql``: strawberry's Litestar controller, adjusted to the platform's rules.

- GET serves the GraphiQL page only, and without a token (a browser cannot send
  one): the handler opts out of the kernel's bearer middleware via
  ``opt={"exclude_from_auth": True}``, and queries over GET are disabled, so nothing
  runs unauthenticated.
- POST carries every operation. The kernel's bearer middleware has verified the token
  (401 problem+json otherwise; 403 ``insufficient_scope`` for a good token not issued
  for the portal, decision 0023) and the ``portal`` scope guard runs before GraphQL
  (403 problem+json otherwise).
- No WebSocket endpoint: the schema has no subscriptions, and a socket would bypass
  the POST handler's scope guard.
- Bodies above 64 KiB are 413 problem+json before strawberry reads them.
- Transport errors strawberry reports (bad JSON, no query, query over GET) are
  problem+json like every other error of the platform.
- The POST body passes the kernel's strict JSON checks first (``JSON_BODY``,
  decision 0022): 415 for another media type, 400 for invalid UTF-8, duplicate keys
  or deep nesting.
"""

from __future__ import annotations

from typing import Any, cast

from cross_web import HTTPException
from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException, ValidationException
from litestar.status_codes import HTTP_200_OK
from strawberry.litestar import make_graphql_controller

from experience_apis.portal.context import portal_context
from experience_apis.portal.schema import schema
from shared.auth.litestar_auth import requires
from shared.problems import problem_response, problem_responses
from shared.request_body import JSON_BODY

GRAPHQL_PATH = "/graphql"
MAX_QUERY_BODY_BYTES = 64 * 1024  # a query bigger than this is an attack, not a portal (413)


_StrawberryController = make_graphql_controller(
    schema,
    path=GRAPHQL_PATH,
    graphql_ide="graphiql",
    allow_queries_via_get=False,
    context_getter=portal_context,
    multipart_uploads_enabled=False,
)


class PortalGraphQL(_StrawberryController):  # type: ignore[misc,valid-type]
    websocket_endpoint = None  # removes strawberry's WebSocket route (see above)
    opt = {JSON_BODY: True}  # the POST body is JSON that strawberry reads itself

    @get(
        opt={"exclude_from_auth": True},
        include_in_schema=False,
        raises=[ValidationException, NotFoundException],
    )
    async def handle_http_get(
        self,
        request: Request[Any, Any, Any],
        context: NamedDependency[Any],
        root_value: NamedDependency[Any],
        response: NamedDependency[Response[Any]],
    ) -> Response[Any]:
        """The GraphiQL page (in a browser, no token needed)."""
        self.temporal_response = response
        return await self.execute_request(request=request, context=context, root_value=root_value)

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
    ) -> Response[Any]:
        self.temporal_response = response
        return await self.execute_request(request=request, context=context, root_value=root_value)

    async def execute_request(
        self, request: Request[Any, Any, Any], context: Any, root_value: Any
    ) -> Response[Any]:
        try:
            return cast(
                "Response[Any]", await self.run(request, context=context, root_value=root_value)
            )
        except HTTPException as exc:
            return problem_response(exc.status_code, exc.reason, instance=request.url.path)
