"""Building blocks every service's ``create_app`` composes: the runtime (database, bus,
outbox relay, consumers, HTTP client, tokens) and the Litestar app around it."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
from litestar import Litestar, Request, Response
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Contact, License, Server, Tag
from litestar.routes import HTTPRoute
from sqlalchemy import MetaData

from shared.auth.litestar_auth import bearer_auth, security_components
from shared.auth.principal import Principal
from shared.auth.revocation import REVOCATIONS_PATH, RevocationList, RevocationPoller, http_fetch
from shared.auth.service_tokens import ServiceTokens
from shared.auth.verifier import KeySource, RemoteJwks, TokenVerifier
from shared.breaker import Breakers
from shared.correlation import CorrelationMiddleware
from shared.db import Database
from shared.events.bus import EventBus, open_bus
from shared.events.envelope import Event
from shared.events.inbox import EventConsumer, EventHandler, RunStart, inbox_tables, retry_policy
from shared.events.outbox import OutboxRelay, outbox_table
from shared.http import Downstream, new_http_client
from shared.idempotency import IdempotencyStore, idempotency_table
from shared.leader import FileLock, lead
from shared.observability import (
    MetricsMiddleware,
    configure_logging,
    forget_this_process,
    health_routes,
)
from shared.openapi import finalize_openapi
from shared.problems import EXCEPTION_HANDLERS, problem_details_plugin
from shared.request_body import StrictJsonRequest, check_json_body, document_json_bodies
from shared.settings import Settings
from shared.topology import ALL_SCOPES, BY_NAME

# Set by ``tally serve`` (a process that runs one service until it stops): see
# ``_settle_heap``. Tests build many apps in one process and leave it unset.
SERVED_PROCESS_ENV = "TALLY_SERVED_PROCESS"

log = logging.getLogger("tally.service")


class Runtime:
    """What a running service owns. Created in ``create_app``; started by the lifespan."""

    def __init__(
        self,
        settings: Settings,
        metadata: MetaData,
        *,
        key_source: KeySource | None = None,
        produces_events: bool = True,
        consumes_events: bool = False,
    ) -> None:
        self.settings = settings
        if produces_events:
            outbox_table(metadata)
        if consumes_events:
            inbox_tables(metadata)
        idempotency_table(metadata)
        self.db = Database(settings.database_url, metadata)
        self.http = new_http_client()  # tokens, keys, revocations
        self._pools: dict[str, httpx.AsyncClient] = {}
        self.tokens = ServiceTokens(
            self.http, settings.token_url, settings.client_id, settings.client_secret
        )
        self.bus: EventBus | None = (
            open_bus(
                settings.bus_url,
                visibility_timeout=settings.bus_visibility_timeout,
                max_len=settings.events_max_len,
            )
            if (produces_events or consumes_events)
            else None
        )
        self.relay = (
            OutboxRelay(
                self.db,
                self.bus,
                poll_seconds=settings.outbox_poll_seconds,
                coalesce_seconds=settings.outbox_coalesce_seconds,
            )
            if produces_events and self.bus
            else None
        )
        self.idempotency = IdempotencyStore(self.db)
        spec = BY_NAME[settings.service]
        self.api = spec.api or settings.service
        self.revocations = RevocationList()
        self.verifier = TokenVerifier(
            key_source or RemoteJwks(settings.jwks_url, self.http),
            issuer=settings.issuer,
            audience=self.api,
            revocations=self.revocations,
        )
        self.breakers = Breakers(
            failures=settings.breaker_failures, cooldown=settings.breaker_cooldown_seconds
        )
        self.consumers: list[EventConsumer] = []
        # Jobs of every worker process (each keeps its own state current), and jobs that
        # run once per service, in the worker that leads (shared/leader.py).
        self.background: list[Callable[[asyncio.Event], Any]] = []
        self.singletons: list[Callable[[asyncio.Event], Any]] = []
        self.leadership = FileLock(settings.data_dir / f"{settings.service}.leader")
        if key_source is None:  # keys from the gateway: follow its revocations too (0011)
            revocations_url = settings.url_of("gateway").rstrip("/") + REVOCATIONS_PATH
            poller = RevocationPoller(self.revocations, http_fetch(self.http, revocations_url))
            self.background.append(poller.run)
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []

    def downstream(self, service: str) -> Downstream:
        """Each downstream service has a connection pool of its own: httpx checks every
        idle connection of its pool for each request (a readability poll per socket),
        so one pool shared by every downstream made each call pay for all the others'
        idle connections (about a fifth of order_to_ship's CPU under `tally simulate`)."""
        client = self._pools.get(service)
        if client is None:
            client = self._pools[service] = new_http_client()
        return Downstream(
            service,
            self.settings.url_of(service),
            client,
            self.tokens,
            breaker=self.breakers.get(service),
        )

    def consume(
        self,
        group: str,
        streams: Sequence[str],
        handlers: Mapping[str, EventHandler],
        *,
        ordered_types: Collection[str],
        inbox: str = "",
        run_order: Callable[[Event], str] | None = None,
        run_start: RunStart | None = None,
    ) -> None:
        """Consume ``streams`` as ``group``. ``ordered_types`` (required, may be empty)
        names the handled types that apply strictly in sequence order per subject; the
        others are deduplicated by event id only (see shared/events/inbox/apply.py).
        A group reading a stream that another group of this service reads too needs
        its own ``inbox`` (a table name prefix): both see the same event ids.
        ``run_order`` sorts each run of events by the row they lock first;
        ``run_start`` is called at the start of each run's transaction, to take its
        row locks in one order or load what its handlers read (see
        shared/events/inbox/apply.py)."""
        assert self.bus is not None, "consumers need a bus"
        settings = self.settings
        self.consumers.append(
            EventConsumer(
                db=self.db,
                bus=self.bus,
                group=group,
                streams=streams,
                handlers=handlers,
                ordered_types=ordered_types,
                policy=retry_policy(settings),
                block_ms=settings.consumer_block_ms,
                inbox=inbox,
                run_order=run_order,
                run_start=run_start,
            )
        )

    async def ready(self) -> None:
        await self.db.ping()
        if self.bus:
            await self.bus.ping()

    @asynccontextmanager
    async def lifespan(self, _app: Litestar) -> AsyncIterator[None]:
        await self.db.create_schema()
        self._stop.clear()
        leading = self.leadership.try_acquire()
        if self.relay:
            if not leading:
                self.relay.follow()
            self._tasks.append(asyncio.create_task(self.relay.run(self._stop)))
        for job in self.background:
            self._tasks.append(asyncio.create_task(job(self._stop)))
        if leading:
            self._lead()
        else:
            log.info("%s: another worker leads; waiting for the lead", self.settings.service)
            self._tasks.append(asyncio.create_task(self._wait_for_lead()))
        if os.environ.get(SERVED_PROCESS_ENV) == "1":
            _settle_heap()
        try:
            yield
        finally:
            self._stop.set()
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._tasks.clear()
            self.leadership.close()
            forget_this_process()
            await self.http.aclose()
            for client in self._pools.values():
                await client.aclose()
            if self.bus:
                await self.bus.close()
            await self.db.dispose()

    def _lead(self) -> None:
        """This worker leads: the service's consumers, scheduled jobs and relay passes."""
        if self.relay:
            self.relay.lead()
        for consumer in self.consumers:
            self._tasks.append(asyncio.create_task(consumer.run(self._stop)))
        for job in self.singletons:
            self._tasks.append(asyncio.create_task(job(self._stop)))

    async def _wait_for_lead(self) -> None:
        if await lead(self.leadership, self._stop, self.settings.leader_retry_seconds):
            log.info("%s: this worker now leads", self.settings.service)
            self._lead()


def _settle_heap() -> None:
    """Moves what start-up built (modules, the app, its routes, statements) out of the
    cyclic garbage collector's sight: a full collection otherwise walks all of it
    again, tens of ms each time, to find nothing. Only for a process that serves one
    app until it exits: frozen objects in a cycle are never collected."""
    gc.collect()
    gc.freeze()


def at_startup(
    step: Callable[[], Awaitable[object]],
) -> Callable[[Any], AbstractAsyncContextManager[None]]:
    """A Litestar lifespan that awaits ``step`` once the runtime has started (a schema
    upgrade, say: after ``create_schema``)."""

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        await step()
        yield

    return lifespan


def build_app(
    runtime: Runtime,
    *,
    route_handlers: Sequence[Any],
    title: str,
    version: str = "1.0.0",
    description: str = "",
    tags: Sequence[Tag] = (),
    dependencies: dict[str, Any] | None = None,
    extra_lifespans: Sequence[Any] = (),
) -> Litestar:
    settings = runtime.settings
    configure_logging(settings.service)
    provided: dict[str, Any] = {"principal": Provide(_principal, sync_to_thread=False)}
    provided |= {
        name: Provide(_constant(value), sync_to_thread=False)
        for name, value in (dependencies or {}).items()
    }
    app = Litestar(
        route_handlers=[*health_routes(runtime.ready), *route_handlers],
        middleware=[
            CorrelationMiddleware,
            DefineMiddleware(MetricsMiddleware, service=settings.service),
            bearer_auth(runtime.verifier),
        ],
        plugins=[problem_details_plugin()],
        exception_handlers=EXCEPTION_HANDLERS,
        request_class=StrictJsonRequest,  # bodies decoded strictly (decision 0022)
        before_request=check_json_body,
        dependencies=provided,
        lifespan=[runtime.lifespan, *extra_lifespans],
        openapi_config=OpenAPIConfig(
            title=title,
            version=version,
            description=description,
            contact=Contact(
                name="Tally integration team", url="https://github.com/tally-platform/tally"
            ),
            license=License(name="Apache-2.0", identifier="Apache-2.0"),
            path="/schema",
            servers=[Server(url=settings.url_of("gateway"), description="through the gateway")],
            components=security_components(settings.token_url, ALL_SCOPES),
            tags=list(tags),
            render_plugins=[ScalarRenderPlugin(), SwaggerRenderPlugin(path="/swagger")],
            use_handler_docstrings=True,
        ),
        debug=False,
        logging_config=None,  # keep the JSON log lines of configure_logging
    )
    _fix_options_allow_headers(app)
    _dependencies_in_turn(app)
    finalize_openapi(app, document_json_bodies)
    return app


def _dependencies_in_turn(app: Litestar) -> None:
    """Litestar resolves a handler's independent dependencies concurrently, an anyio
    task group with a task per dependency on every request (Litestar 2.25,
    ``KwargsModel.resolve_dependencies``). Ours are the principal and constants,
    resolved without waiting: the task group cost a request more than the handler's
    own work on small reads (decision 0053). Each batch becomes batches of one, resolved
    in turn, in an order their dependency levels already allow."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for _, kwargs_model in route.route_handler_map.values():
            kwargs_model.dependency_batches = [
                {dependency}
                for batch in kwargs_model.dependency_batches
                for dependency in sorted(batch, key=lambda d: d.key)
            ]


def _fix_options_allow_headers(app: Litestar) -> None:
    """Litestar 2.25 builds the automatic OPTIONS handler when the first handler of a
    path registers, so ``Allow`` misses methods added later on the same path (GET and
    POST on one collection). Rebind each OPTIONS handler to its final route's methods."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        allow = ", ".join(sorted(route.methods))
        for handler in route.route_handlers:
            if handler.http_methods == {"OPTIONS"} and handler.handler_name == "options_handler":
                # Litestar passes the ASGI scope; the answer depends on the route only.
                def options_handler(scope: Any, _allow: str = allow) -> Response[None]:  # noqa: ARG001
                    return Response(
                        content=None,
                        status_code=204,
                        headers={"Allow": _allow},
                        media_type="text/plain",
                    )

                handler._fn = options_handler  # type: ignore[assignment]


def _principal(request: Request[Any, Any, Any]) -> Principal:
    user = request.user
    assert isinstance(user, Principal)
    return user


def _constant(value: Any) -> Callable[[], Any]:
    def provide() -> Any:
        return value

    return provide
