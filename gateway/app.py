"""The gateway: the one wiring point. ``uvicorn gateway.app:create_app --factory``.

The ASGI stack, outermost first: correlation id -> metrics -> router (forwards
``/{api}/v1/...`` and ``/graphql``) -> the Litestar app (OAuth endpoints, JWKS,
metadata, contract catalog, health).
"""

from __future__ import annotations

import anyio
from litestar import Litestar
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin
from litestar.openapi.spec import Tag
from litestar.types import ASGIApp

from gateway.clients.registry import ClientRegistry
from gateway.contracts.routes import contract_routes
from gateway.oauth.keys import KeyStore, LocalKeySource
from gateway.oauth.routes import oauth_routes
from gateway.oauth.server import TallyAuthorizationServer
from gateway.routing.forwarder import Forwarder
from gateway.routing.router import GRAPHQL_API, GatewayRouter
from shared.auth.verifier import TokenVerifier
from shared.correlation import CorrelationMiddleware
from shared.observability import MetricsMiddleware, configure_logging, health_routes
from shared.problems import EXCEPTION_HANDLERS, problem_details_plugin
from shared.settings import Settings, load_settings
from shared.topology import BY_API


def create_app(settings: Settings | None = None) -> ASGIApp:
    settings = settings or load_settings("gateway")
    configure_logging(settings.service)
    registry = ClientRegistry(settings.database_url)
    keys = KeyStore.in_data_dir(settings.data_dir)
    server = TallyAuthorizationServer(registry, settings.issuer, keys)
    forwarder = Forwarder()
    key_source = LocalKeySource(keys)
    upstreams = {api: settings.url_of(spec.name) for api, spec in BY_API.items()}
    verifiers = {
        api: TokenVerifier(key_source, issuer=settings.issuer, audience=api)
        for api in upstreams
        if api != GRAPHQL_API
    }

    async def ready() -> None:
        await anyio.to_thread.run_sync(registry.ping)
        _ = forwarder.session  # raises until the lifespan has opened it

    app = Litestar(
        route_handlers=[
            *health_routes(ready),
            *oauth_routes(server, keys, settings.issuer),
            *contract_routes(forwarder, settings),
        ],
        plugins=[problem_details_plugin()],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=[forwarder.lifespan],
        on_shutdown=[registry.close],
        openapi_config=OpenAPIConfig(
            title="Tally gateway",
            version="1.0.0",
            description="OAuth 2 authorization server and contract catalog of Tally.",
            path="/schema",
            tags=[Tag(name="oauth"), Tag(name="contracts")],
            render_plugins=[ScalarRenderPlugin()],
        ),
        logging_config=None,  # keep the JSON log lines of configure_logging
        debug=False,
    )
    router = GatewayRouter(app, forwarder, upstreams, verifiers)
    return CorrelationMiddleware(MetricsMiddleware(router, service=settings.service))
