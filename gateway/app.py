"""The gateway: the one wiring point. ``uvicorn gateway.app:create_app --factory``.

The ASGI stack, outermost first: correlation id -> metrics -> router (edge policies:
header limits, CORS, versions, tokens, rate limits, body limits, audit; forwards
``/{api}/v{major}/...`` and ``/graphql``) -> the Litestar app (OAuth endpoints, JWKS,
metadata, contract catalog, audit log, health).
"""

from __future__ import annotations

import anyio
from litestar import Litestar
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin
from litestar.openapi.spec import Tag
from litestar.types import ASGIApp

from gateway.audit.log import AuditLog
from gateway.audit.routes import audit_routes
from gateway.audit.store import AuditStore
from gateway.contracts import versions as api_versions
from gateway.contracts.routes import contract_routes
from gateway.oauth.authority import Authority
from gateway.policies.cors import Cors
from gateway.policies.rate_limits import RateLimits, limiter_for
from gateway.policies.timeouts import UpstreamTimeouts
from gateway.routing.forwarder import Forwarder
from gateway.routing.router import EdgePolicies, GatewayRouter
from gateway.routing.versions import version_routes
from shared.auth.service_tokens import ServiceTokens
from shared.auth.verifier import KeySource
from shared.correlation import CorrelationMiddleware
from shared.observability import MetricsMiddleware, configure_logging, health_routes
from shared.problems import EXCEPTION_HANDLERS, problem_details_plugin
from shared.settings import Settings, load_settings
from shared.topology import BY_API


def create_app(
    settings: Settings | None = None,
    *,
    key_source: KeySource | None = None,
    service_tokens: ServiceTokens | None = None,
) -> ASGIApp:
    """The signature every service's factory shares. The gateway is the authority: it
    verifies with the keys it holds and calls upstreams with the caller's token, so it
    has no use for ``key_source`` or ``service_tokens`` and ignores them."""
    del key_source, service_tokens
    settings = settings or load_settings("gateway")
    configure_logging(settings.service)
    authority = Authority(settings)  # clients, keys, token store, revocations
    registry = authority.registry
    forwarder = Forwarder()
    upstreams = {api: settings.url_of(spec.name) for api, spec in BY_API.items()}
    verifiers = {api: authority.verifier(api) for api in upstreams}
    audit_store = AuditStore(settings.database_url)
    audit_log = AuditLog(audit_store, flush_seconds=settings.audit_flush_seconds)
    policies = EdgePolicies(
        rate_limits=RateLimits(settings.rate_limits, limiter_for(settings.redis_url)),
        cors=Cors(settings.cors_origins),
        timeouts=UpstreamTimeouts(settings.upstream_timeouts),
        audit=audit_log,
        max_body_bytes=settings.max_body_bytes,
        max_header_bytes=settings.max_header_bytes,
        versions=version_routes(api_versions.VERSIONS),
    )

    async def ready() -> None:
        await anyio.to_thread.run_sync(registry.ping)
        _ = forwarder.session  # raises until the lifespan has opened it

    app = Litestar(
        route_handlers=[
            *health_routes(ready),
            *authority.routes(),
            *contract_routes(forwarder, settings),
            *audit_routes(audit_store, verifiers),
        ],
        plugins=[problem_details_plugin()],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=[authority.lifespan, forwarder.lifespan, audit_log.lifespan],
        on_shutdown=[registry.close, policies.rate_limits.close],
        openapi_config=OpenAPIConfig(
            title="Tally gateway",
            version="1.0.0",
            description="OAuth 2 authorization server and contract catalog of Tally.",
            path="/schema",
            tags=[Tag(name="oauth"), Tag(name="contracts"), Tag(name="audit")],
            render_plugins=[ScalarRenderPlugin()],
        ),
        logging_config=None,  # keep the JSON log lines of configure_logging
        debug=False,
    )
    router = GatewayRouter(app, forwarder, upstreams, verifiers, policies)
    return CorrelationMiddleware(MetricsMiddleware(router, service=settings.service))
