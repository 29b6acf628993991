"""``GET /audit``: the audit log for admins (scope ``admin``), newest first, cursor
paginated. The token is verified like a REST call's (any API audience will do: an
admin token names them all)."""

from __future__ import annotations

from typing import Annotated, Any

import anyio
import msgspec
from litestar import Request, get
from litestar.params import Parameter

from gateway.audit.store import AuditStore, parse_since
from shared.auth.principal import Principal
from shared.auth.verifier import InvalidToken, TokenVerifier
from shared.problems import ProblemError, problem_responses


class AuditItem(msgspec.Struct):
    id: int
    at: str
    client_id: str | None
    customer_id: str | None
    method: str
    route: str
    path: str
    status: int
    latency_ms: float
    correlation_id: str | None


class AuditPage(msgspec.Struct):
    items: list[AuditItem]
    next_cursor: str | None


def _unauthorized(detail: str, error: str = "invalid_token") -> ProblemError:
    return ProblemError(
        401,
        "unauthorized",
        detail,
        headers={"WWW-Authenticate": f'Bearer error="{error}", error_description="{detail}"'},
    )


async def _admin(header: str | None, verifiers: list[TokenVerifier]) -> Principal:
    if not header:
        raise ProblemError(
            401,
            "unauthorized",
            "An access token is required (Authorization: Bearer ...).",
            headers={"WWW-Authenticate": 'Bearer realm="tally"'},
        )
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("The Authorization header must be 'Bearer <token>'.", "invalid_request")
    last = "The access token is invalid."
    for verifier in verifiers:
        try:
            principal = await verifier.verify(token.strip())
        except InvalidToken as exc:
            last = str(exc)
            continue
        # A client bound to a customer never holds admin (ADR 0021); if a token says
        # otherwise, the log of every customer's calls still stays closed to it.
        if "admin" not in principal.scopes or principal.customer_id is not None:
            raise ProblemError(
                403,
                "insufficient-scope",
                "The audit log requires the 'admin' scope.",
                headers={"WWW-Authenticate": 'Bearer error="insufficient_scope", scope="admin"'},
            )
        return principal
    raise _unauthorized(last)


def audit_routes(store: AuditStore, verifiers: dict[str, TokenVerifier]) -> list[Any]:
    ordered = list(verifiers.values())

    @get(
        "/audit",
        tags=["audit"],
        security=[{"oauth2": ["admin"]}],
        responses=problem_responses(),
    )
    async def audit(
        request: Request[Any, Any, Any],
        client: Annotated[str | None, Parameter(max_length=64)] = None,
        status: Annotated[int | None, Parameter(ge=100, le=599)] = None,
        since: Annotated[str | None, Parameter(max_length=40)] = None,
        cursor: Annotated[str | None, Parameter(max_length=20)] = None,
        limit: Annotated[int, Parameter(ge=1, le=500)] = 100,
    ) -> AuditPage:
        """Every call through the gateway, newest first: time, client, customer, method,
        route, status, latency and correlation id."""
        principal = await _admin(request.headers.get("authorization"), ordered)
        request.scope.setdefault("state", {})["principal"] = principal  # for its own audit row
        try:
            since_text = parse_since(since) if since else None
            before = int(cursor) if cursor else None
        except ValueError as exc:
            raise ProblemError(400, "invalid-request", str(exc)) from exc
        rows = await anyio.to_thread.run_sync(
            lambda: store.query(
                client_id=client, status=status, since=since_text, before_id=before, limit=limit
            )
        )
        items = [msgspec.convert(row, AuditItem) for row in rows]
        next_cursor = str(items[-1].id) if len(items) == limit else None
        return AuditPage(items=items, next_cursor=next_cursor)

    return [audit]
