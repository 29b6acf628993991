"""RFC 9457 problem details for every service.

A problem carries a stable relative ``type`` (``/problems/<slug>``) and the
correlation id, so a partner can branch on the type and quote the id to support.
Every ``shared.refusals.Refusal`` is answered by one handler (``EXCEPTION_HANDLERS``,
which every service's app gets from ``shared.service.build_app``) through
``body_of_problem``, the function the allocation fast path answers with too.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.plugins.problem_details import (
    ProblemDetailsConfig,
    ProblemDetailsException,
    ProblemDetailsPlugin,
)

from shared.correlation import correlation_id
from shared.db.conflicts import is_conflict, is_lost_connection
from shared.refusals import Refusal

PROBLEM_MEDIA_TYPE = "application/problem+json"
log = logging.getLogger("tally.problems")

_DEFAULT_TYPES = {
    400: ("bad-request", "Bad request"),
    401: ("unauthorized", "Authentication required"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    409: ("conflict", "Conflict"),
    410: ("gone", "Gone"),
    413: ("payload-too-large", "Payload too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    422: ("unprocessable", "Unprocessable request"),
    429: ("rate-limited", "Too many requests"),
    500: ("internal", "Internal server error"),
    502: ("bad-gateway", "Bad gateway"),
    503: ("unavailable", "Service unavailable"),
    504: ("gateway-timeout", "Gateway timeout"),
}


class Problem(msgspec.Struct, omit_defaults=True):
    """The documented body of every error response."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    correlation_id: str | None = None
    errors: list[dict[str, Any]] | None = None


# The name the kernel's HTTP layer (authentication, request bodies, downstream calls)
# and older code raise: one type, one rendering.
ProblemError = Refusal


def problem_body(
    status: int,
    detail: str | None = None,
    *,
    slug: str | None = None,
    title: str | None = None,
    instance: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    default_slug, default_title = _DEFAULT_TYPES.get(status, ("error", "Error"))
    body: dict[str, Any] = {
        "type": f"/problems/{slug or default_slug}",
        "title": title or default_title,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    if extra:
        body.update(extra)
    body["correlation_id"] = correlation_id.get()
    return body


def problem_response(
    status: int,
    detail: str | None = None,
    *,
    slug: str | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
    instance: str | None = None,
) -> Response[Any]:
    return Response(
        problem_body(status, detail, slug=slug, extra=extra, instance=instance),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


def body_of_problem(exc: Refusal | ProblemDetailsException, instance: str) -> dict[str, Any]:
    """The problem body of a refusal, as every service (and the fast path) answers it."""
    if isinstance(exc, Refusal):
        return problem_body(
            exc.status,
            exc.detail or None,
            slug=exc.slug,
            title=exc.title,
            extra=exc.extra,
            instance=instance,
        )
    slug = exc.type_.removeprefix("/problems/") if exc.type_ else None
    extra = dict(exc.extra) if isinstance(exc.extra, dict) else None
    return problem_body(
        exc.status_code, exc.detail or None, slug=slug, extra=extra, instance=instance
    )


def _handle_refusal(
    request: Request[Any, Any, Any], exc: Refusal | ProblemDetailsException
) -> Response[Any]:
    """The one handler that answers a refusal, wherever it was raised."""
    return Response(
        body_of_problem(exc, request.url.path),
        status_code=exc.status_code,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=exc.headers,
    )


def _handle_http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if exc.status_code >= 500:
        log.error("%s %s failed: %r", request.method, request.url.path, exc, exc_info=exc)
    detail = exc.detail
    if isinstance(exc, ValidationException):
        # A request that breaks the contract's schema (type, bound, missing field).
        errors = exc.extra if isinstance(exc.extra, list) else []
        return problem_response(
            400,
            detail,
            slug="invalid-request",
            extra={"errors": errors},
            headers=exc.headers,
            instance=request.url.path,
        )
    return problem_response(exc.status_code, detail, headers=exc.headers, instance=request.url.path)


def conflict_refusal() -> Refusal:
    """A transaction the database rolled back as a deadlock victim (or serialization
    failure): nothing was written, so the caller may send the request again."""
    return Refusal(
        503,
        "transaction-conflict",
        "Another transaction held what this request needed; nothing was changed. Retry.",
        headers={"Retry-After": "1"},
    )


def lost_connection_refusal() -> Refusal:
    """The database connection had gone mid-request (a server restart): the pool
    connects anew on the next request, which the caller sends again with the same
    Idempotency-Key (a write that did commit is then replayed, not repeated)."""
    return Refusal(
        503,
        "database-unavailable",
        "The database connection was lost during the request. Retry with the same "
        "Idempotency-Key: a change that was committed is answered, not made twice.",
        headers={"Retry-After": "1"},
    )


def _handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    if is_conflict(exc):
        log.warning("%s %s lost a lock conflict: %s", request.method, request.url.path, exc)
        return _handle_refusal(request, conflict_refusal())
    if is_lost_connection(exc):
        log.warning("%s %s lost its database connection: %s", request.method, request.url.path, exc)
        return _handle_refusal(request, lost_connection_refusal())
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(500, "An unexpected error occurred.", instance=request.url.path)


def problem_details_plugin() -> ProblemDetailsPlugin:
    return ProblemDetailsPlugin(ProblemDetailsConfig(exception_handler=_handle_refusal))


EXCEPTION_HANDLERS: dict[type[Exception] | int, Any] = {
    Refusal: _handle_refusal,
    HTTPException: _handle_http,
    Exception: _handle_unexpected,
}


_RESPONSE_TEXT = {
    400: "The request breaks the contract (schema, type or bound).",
    401: "No valid access token.",
    403: "The token lacks the scope this operation requires.",
    404: "No such resource (or not visible to this client).",
    409: "Conflicts with the current state (or the same Idempotency-Key is still running).",
    410: "This API version is retired; use its successor.",
    413: "The request body is larger than this operation accepts.",
    415: "The body is not 'application/json' (UTF-8).",
    422: "Well-formed but not acceptable (unknown reference, reused Idempotency-Key).",
    429: "Rate limit exceeded.",
    503: "A service this one depends on is unavailable; retry later.",
}


def problem_response_text(status: int) -> str:
    return _RESPONSE_TEXT.get(status, "Problem")


def problem_responses(*statuses: int) -> dict[int, Any]:
    """OpenAPI ``responses`` documenting problem+json bodies; 400/401/403 always included."""
    from litestar.openapi.datastructures import ResponseSpec

    wanted = sorted({400, 401, 403, *statuses})
    return {
        status: ResponseSpec(
            data_container=Problem,
            description=_RESPONSE_TEXT.get(status, "Problem"),
            media_type=PROBLEM_MEDIA_TYPE,
            generate_examples=False,
        )
        for status in wanted
    }
