"""Portal experience API (GraphQL for customer portals): the one wiring point.

It holds no data and no business rule: resolvers read the order-to-ship, billing and
availability process APIs with the caller's own token."""

from __future__ import annotations

from litestar import Litestar
from litestar.openapi.spec import Tag
from sqlalchemy import MetaData

from experience_apis.portal.endpoint import PortalGraphQL
from experience_apis.portal.subscriptions.lifespan import subscriptions_lifespan
from shared.auth.service_tokens import ServiceTokens
from shared.auth.verifier import KeySource
from shared.service import Runtime, build_app
from shared.settings import Settings, load_settings


def create_app(
    settings: Settings | None = None,
    *,
    key_source: KeySource | None = None,
    service_tokens: ServiceTokens | None = None,
) -> Litestar:
    settings = settings or load_settings("portal")
    runtime = Runtime(settings, MetaData(), key_source=key_source, produces_events=False)
    if service_tokens is not None:
        runtime.tokens = service_tokens
    return build_app(
        runtime,
        route_handlers=[PortalGraphQL],
        title="Tally portal GraphQL API",
        description="GraphQL for customer portals: orders with shipments and invoices, and "
        "availability. POST /graphql with a token carrying the `portal` scope; subscriptions "
        "over graphql-transport-ws on the WebSocket /graphql; GET /graphql "
        "in a browser opens GraphiQL. The schema is contracts/graphql/portal.graphql.",
        tags=[Tag(name="graphql")],
        dependencies={"runtime": runtime},
        extra_lifespans=[subscriptions_lifespan(runtime)],
    )
