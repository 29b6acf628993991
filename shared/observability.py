"""Health, readiness and Prometheus metrics on every service, plus JSON log lines that
carry the correlation id."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Response, get
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Histogram,
    generate_latest,
    multiprocess,
)

from shared.correlation import correlation_id

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

REQUEST_SECONDS = Histogram(
    "tally_http_request_seconds",
    "HTTP request latency by route and status",
    ["service", "method", "route", "status"],
)


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if cid := correlation_id.get():
            entry["correlation_id"] = cid
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs every request at INFO: a line per call to a downstream (40,000 in the
    # order service's log 60,000 lines into a simulated day, 3 % of its event loop).
    # The callee's request metrics count every call; a failed one is its caller's to log.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))


def health_routes(readiness: Callable[[], Awaitable[None]]) -> list[Any]:
    @get("/healthz", include_in_schema=False, sync_to_thread=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @get("/readyz", include_in_schema=False)
    async def readyz() -> Response[dict[str, str]]:
        try:
            await readiness()
        except Exception as exc:  # any failing dependency means "not ready"
            return Response({"status": "not ready", "reason": type(exc).__name__}, status_code=503)
        return Response({"status": "ready"})

    @get("/metrics", include_in_schema=False, sync_to_thread=False)
    def metrics() -> Response[bytes]:
        return Response(generate_latest(metrics_registry()), media_type=CONTENT_TYPE_LATEST)

    return [healthz, readyz, metrics]


def metrics_registry() -> CollectorRegistry:
    """This process's registry; with several workers (``tally serve --workers``, which
    sets PROMETHEUS_MULTIPROC_DIR) every worker's samples, merged by prometheus_client."""
    if not os.environ.get(MULTIPROC_ENV):
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


def forget_this_process() -> None:
    """At a worker's shutdown: its live gauges leave the merged view."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # type: ignore[comparison-overlap]
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            route = scope.get("path_template") or "unmatched"
            REQUEST_SECONDS.labels(
                self.service, scope.get("method", ""), route, str(status)
            ).observe(time.perf_counter() - started)
