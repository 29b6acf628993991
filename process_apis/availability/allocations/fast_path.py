"""``POST /availability/v1/allocations`` without the framework's per-request layers
(decision 0019).

The route is the platform's hottest: Litestar's routing, middleware stack, parameter
parsing, request and response objects cost about twice what the allocation itself
does. This ASGI layer sits inside the Litestar app (its ``asgi_handler``: Litestar's
own ``before_send`` hooks still run) and answers one case on its own: a well-formed
request, a valid token with ``inventory:write``, a valid Idempotency-Key and a body
that decodes to ``AllocationIn``. It does what the middleware stack does on that path
(correlation id, token and scope, the request metric) and hands the order to the same
``AllocationBatcher`` as the route.

Anything else (no token, a bad key, a body that does not decode, another content
type, another route) goes to Litestar untouched, with the body replayed, so every
refusal is the framework's own problem response: this layer never writes one for
input it did not accept. The batcher's own answers (a replay, 409, 422) are written
here, in the same form as the exception handlers write them."""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import msgspec
from litestar import Response
from litestar.types import (
    ASGIApp,
    HTTPRequestEvent,
    HTTPResponseStartEvent,
    Receive,
    ReceiveMessage,
    Scope,
    Send,
)

from process_apis.availability.allocations.batcher import AllocationBatcher
from process_apis.availability.ownership import for_customer
from process_apis.availability.schemas import AllocationIn
from shared import strict_json
from shared.auth.litestar_auth import authorize
from shared.auth.principal import Principal
from shared.auth.verifier import InvalidToken, KeysUnavailable, TokenVerifier
from shared.correlation import accept_correlation_id, correlation_id, traceparent
from shared.db import is_conflict
from shared.observability import REQUEST_SECONDS
from shared.problems import (
    PROBLEM_MEDIA_TYPE,
    body_of_problem,
    conflict_refusal,
    problem_body,
)
from shared.refusals import Refusal
from shared.request_body import is_json_media_type

log = logging.getLogger("tally.availability")

PATH = "/availability/v1/allocations"
SCOPE = "inventory:write"
_KEY = re.compile(rb"^[\x21-\x7e]{1,255}$")
_BODY_LIMIT = 1 << 20  # Litestar's default request_max_body_size: larger goes its way


class AllocationFastPath:
    def __init__(
        self, app: ASGIApp, verifier: TokenVerifier, batcher: AllocationBatcher, service: str
    ) -> None:
        self.app = app
        self.verifier = verifier
        self.batcher = batcher
        self.service = service
        self._created = REQUEST_SECONDS.labels(service, "POST", PATH, "201")

    # Decision 0019: one pass over the hot route's request, read top to bottom; each early
    # return hands a request it does not take to Litestar, body replayed, unchanged.
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # noqa: C901
        if (
            scope["type"] != "http"  # type: ignore[comparison-overlap]
            or scope["path"] != PATH
            or scope.get("method") != "POST"
            or scope["query_string"]
        ):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        auth = key = content_type = raw_cid = raw_tp = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                auth = value
            elif name == b"idempotency-key":
                key = value
            elif name == b"content-type":
                content_type = value
            elif name == b"x-correlation-id":
                raw_cid = value
            elif name == b"traceparent":
                raw_tp = value
        try:
            body, more = await _read_body(receive)
        except _Disconnected:
            return  # nobody to answer; nothing was done
        principal = None if more else await self._caller(auth, key, content_type)
        if principal is None:
            await self.app(scope, _replaying(body, more, receive), send)
            return
        try:  # the kernel's strict JSON first (decision 0022), then strict typing
            data = msgspec.convert(strict_json.decode(body), AllocationIn)
        except (strict_json.MalformedJson, msgspec.ValidationError):
            await self.app(scope, _replaying(body, False, receive), send)
            return
        assert key is not None  # _caller checked it
        cid = accept_correlation_id(raw_cid.decode("latin-1") if raw_cid else None)
        correlation_id.set(cid)
        traceparent.set(raw_tp.decode("latin-1") if raw_tp else None)
        try:
            answer: Response[Any] = await self.batcher.submit(
                principal.client_id, key.decode("ascii"), for_customer(principal, data)
            )
        except Refusal as exc:
            answer = _problem_response(body_of_problem(exc, PATH), exc.headers)
        except Exception as exc:  # what the service's exception handler does with it
            if is_conflict(exc):
                conflict = conflict_refusal()
                answer = _problem_response(body_of_problem(conflict, PATH), conflict.headers)
            else:
                log.exception("unhandled error on POST %s", PATH, exc_info=exc)
                answer = _problem_response(
                    problem_body(500, "An unexpected error occurred.", instance=PATH)
                )
        status = answer.status_code or 200
        headers = [
            (b"content-type", (answer.media_type or "application/json").encode("latin-1")),
            (b"content-length", str(len(answer.content)).encode("latin-1")),
            *(
                (k.lower().encode("latin-1"), v.encode("latin-1"))
                for k, v in answer.headers.items()
            ),
            (b"x-correlation-id", cid.encode("latin-1")),
        ]
        start: HTTPResponseStartEvent = {
            "type": "http.response.start",
            "status": status,
            "headers": headers,
        }
        await send(start)
        await send({"type": "http.response.body", "body": answer.content, "more_body": False})
        metric = (
            self._created
            if status == 201
            else REQUEST_SECONDS.labels(self.service, "POST", PATH, str(status))
        )
        metric.observe(time.perf_counter() - started)

    async def _caller(
        self, auth: bytes | None, key: bytes | None, content_type: bytes | None
    ) -> Principal | None:
        """The caller, when the happy path's preconditions hold; None sends the request
        to Litestar."""
        if auth is None or key is None or not _KEY.match(key):
            return None
        if not is_json_media_type(content_type):
            return None
        token = auth[7:].strip()
        if auth[:7].lower() != b"bearer " or not token:
            return None
        try:
            principal = await self.verifier.verify(token.decode("latin-1"))
            authorize(principal, SCOPE)
        except (InvalidToken, KeysUnavailable, Refusal):  # the full path answers these
            return None
        return principal


class _Disconnected(Exception):
    pass


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    """The whole body, or what was read before it passed the limit (``more``)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise _Disconnected
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), False
        if size > _BODY_LIMIT:
            return b"".join(chunks), True


def _replaying(body: bytes, more: bool, receive: Receive) -> Receive:
    """``receive`` for the framework: the body read so far, then the rest."""
    replayed = False

    async def replay() -> ReceiveMessage:
        nonlocal replayed
        if not replayed:
            replayed = True
            first: HTTPRequestEvent = {"type": "http.request", "body": body, "more_body": more}
            return first
        return await receive()

    return replay


def _problem_response(body: dict[str, Any], headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(
        msgspec.json.encode(body),
        status_code=body["status"],
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers or {},
    )
