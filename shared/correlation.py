"""Correlation id and W3C trace context carried through every hop, event and log line."""

from __future__ import annotations

import contextvars
import random
import re
import uuid

from litestar.types import ASGIApp, Message, Receive, Scope, Send

CORRELATION_HEADER = "x-correlation-id"
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")

correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "correlation_id", default=None
)
traceparent: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "traceparent", default=None
)


def new_correlation_id() -> str:
    return str(uuid.uuid4())


def accept_correlation_id(raw: str | None) -> str:
    """A caller's id is kept only when it is a short token; anything else is replaced,
    so a log line can never be forged through this header."""
    if raw and _SAFE_ID.match(raw):
        return raw
    return new_correlation_id()


def child_traceparent(parent: str | None) -> str:
    """The parent's trace with a new span id, or a new trace. Ids from ``random`` (as
    OpenTelemetry's ``RandomIdGenerator`` makes them): they must be unique, not secret,
    and ``secrets`` costs a system call for each."""
    trace_id = None
    if parent:
        parts = parent.split("-")
        if len(parts) == 4 and len(parts[1]) == 32:
            trace_id = parts[1]
    if trace_id is None:
        trace_id = f"{random.getrandbits(128) or 1:032x}"
    return f"00-{trace_id}-{random.getrandbits(64) or 1:016x}-01"


def outgoing_headers() -> dict[str, str]:
    headers: dict[str, str] = {}
    if cid := correlation_id.get():
        headers["X-Correlation-Id"] = cid
    headers["traceparent"] = child_traceparent(traceparent.get())
    return headers


class CorrelationMiddleware:
    """Pure ASGI: sets the context variables and echoes the id on the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # type: ignore[comparison-overlap]
            await self.app(scope, receive, send)
            return
        raw_cid = None
        raw_tp = None
        for name, value in scope["headers"]:
            if name == b"x-correlation-id":
                raw_cid = value.decode("latin-1")
            elif name == b"traceparent":
                raw_tp = value.decode("latin-1")
        cid = accept_correlation_id(raw_cid)
        correlation_id.set(cid)
        traceparent.set(raw_tp)
        encoded = cid.encode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-correlation-id", encoded))
                message["headers"] = headers
            await send(message)

        # Not reset afterwards: each request runs in its own task (its own context), and
        # Litestar's outermost exception handler still needs the id after we return.
        await self.app(scope, receive, send_with_id)
