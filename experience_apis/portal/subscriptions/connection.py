"""A subscription connection's caller (graphql-transport-ws, decision 0038).

The socket opens without a token (a browser's WebSocket cannot send headers); the
token comes in ``connection_init``'s payload (``{"Authorization": "Bearer ..."}``)
or, for clients that can, the upgrade request's Authorization header. It is verified
by the app's verifier, as the bearer middleware does for POST, and the ``portal``
scope is required. Refusals close the socket: 4401 without a valid token, 4403 for a
token not granted the portal (audience or scope); 4401 too when the token expires or
is revoked while the socket is open; 1013 (try again later) when the gateway's signing
keys cannot be fetched to check the token."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from typing import Any

from litestar import WebSocket
from strawberry.exceptions import ConnectionRejectionError

from experience_apis.portal.context import PortalContext, caller_for
from experience_apis.portal.subscriptions.hub import Hub
from shared.auth.litestar_auth import authorize
from shared.auth.principal import Principal
from shared.auth.revocation import POLL_SECONDS, RevocationList
from shared.auth.verifier import AudienceNotGranted, InvalidToken, KeysUnavailable
from shared.problems import ProblemError
from shared.service import Runtime

REQUIRED_SCOPE = "portal"
UNAUTHORIZED = (4401, "Unauthorized")
FORBIDDEN = (4403, "Forbidden")
TRY_AGAIN = (1013, "Try Again Later")  # the token could not be checked yet (RFC 6455 registry)
REFUSAL = "portal_refusal"
REVOCATION_CHECK = POLL_SECONDS  # seconds between a connection's looks at revocations  # socket.state key: the close code the adapter sends


class SubscriptionContext(PortalContext, kw_only=True):
    """The connection's context: the caller is set once connection_init is accepted."""

    runtime: Runtime | None = None
    hub: Hub | None = None
    connection_params: Any = None
    expiry: asyncio.Task[None] | None = None  # closes the socket when the token expires

    def end(self) -> None:
        if self.expiry is not None:
            self.expiry.cancel()


class Refused(Exception):
    def __init__(self, close: tuple[int, str]) -> None:
        super().__init__(close[1])
        self.close = close


def token_of(params: Any, headers: Mapping[str, str]) -> str:
    """The bearer token: connection_init's payload first, then the upgrade header."""
    header: Any = None
    if isinstance(params, Mapping):
        header = params.get("Authorization", params.get("authorization"))
    if header is None:
        header = headers.get("authorization")
    if not isinstance(header, str):
        raise Refused(UNAUTHORIZED)
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Refused(UNAUTHORIZED)
    return token.strip()


async def principal_of(runtime: Runtime, params: Any, headers: Mapping[str, str]) -> Principal:
    try:
        principal = await runtime.verifier.verify(token_of(params, headers))
    except AudienceNotGranted as exc:
        raise Refused(FORBIDDEN) from exc
    except InvalidToken as exc:
        raise Refused(UNAUTHORIZED) from exc
    except KeysUnavailable as exc:
        raise Refused(TRY_AGAIN) from exc
    try:
        authorize(principal, REQUIRED_SCOPE)
    except ProblemError as exc:
        raise Refused(FORBIDDEN) from exc
    return principal


async def accept(context: SubscriptionContext) -> None:
    """strawberry's ``on_ws_connect``: binds the caller, or refuses the connection."""
    socket = context.websocket
    runtime = context.runtime
    assert socket is not None
    assert runtime is not None
    try:
        principal = await principal_of(runtime, context.connection_params, socket.headers)
    except Refused as refused:
        setattr(socket.state, REFUSAL, refused.close)
        raise ConnectionRejectionError from refused
    context.caller_ = caller_for(principal, runtime, socket.app.state)
    context.expiry = asyncio.create_task(_watch(socket, principal, runtime.revocations))


async def _watch(
    socket: WebSocket[Any, Any, Any], principal: Principal, revocations: RevocationList
) -> None:
    """A connection lives no longer than its token: 4401 when it expires or is revoked
    (a disabled client, a rotated secret, ``/oauth/revoke``), and the client reconnects
    with a fresh one. Revocations reach this process by the verifier's poll (about once
    a second, decision 0011); each connection looks at the list as often."""
    while True:
        left = principal.expires_at - time.time() if principal.expires_at else REVOCATION_CHECK
        if left <= 0:
            reason = "Token expired"
            break
        await asyncio.sleep(min(left, REVOCATION_CHECK))
        if revocations.is_revoked(principal.jti):
            reason = "Token revoked"
            break
    with contextlib.suppress(Exception):  # the client may have left already
        await socket.close(code=UNAUTHORIZED[0], reason=reason)


def close_code(socket: WebSocket[Any, Any, Any], code: int, reason: str) -> tuple[int, str]:
    """The close strawberry asks for, or the refusal ``accept`` chose (strawberry's
    rejection is always 4403)."""
    refusal: tuple[int, str] | None = getattr(socket.state, REFUSAL, None)
    return refusal if refusal is not None and code == FORBIDDEN[0] else (code, reason)
