"""``/graphql`` over WebSocket: the portal's subscriptions (graphql-transport-ws,
decision 0038), relayed frame by frame to the portal.

The token is checked here before anything goes upstream, as for HTTP: the upgrade
request's Authorization header, else the ``Authorization`` of the first message, the
client's ``connection_init`` payload (a browser cannot send headers on an upgrade).
Refusals close the socket: 4401 (no token, not a bearer, or a token that does not
verify), 4403 (a good token not granted ``graphql``), 4429 (the client's rate limit),
4400 (the first message is not a connection_init). The portal verifies the token
again and checks the scope; its close codes are passed back unchanged (4401 when the
token expires or is revoked while the socket is open). Each connection counts once
against the client's rate limit, and is one entry of the audit log when it ends:
method ``WS``, status the close code, latency the connection's lifetime, with the
client, customer and correlation id (``X-Correlation-Id`` of the upgrade, or new)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

import websockets
from litestar import WebSocket
from litestar.exceptions import WebSocketDisconnect
from litestar.types import Receive, Scope, Send
from websockets.asyncio.client import ClientConnection

from gateway.audit.log import AuditLog
from gateway.audit.store import AuditEntry
from gateway.policies.rate_limits import RateLimits
from shared.auth.principal import Principal
from shared.auth.verifier import AudienceNotGranted, InvalidToken, TokenVerifier
from shared.correlation import accept_correlation_id, correlation_id

log = logging.getLogger("tally.gateway.sockets")

PROTOCOL = "graphql-transport-ws"
INIT_SECONDS = 10.0
MAX_FRAME_BYTES = 64 * 1024  # the portal's largest query body, too
UNAUTHORIZED = (4401, "Unauthorized")
FORBIDDEN = (4403, "Forbidden")


class _Refused(Exception):
    def __init__(self, close: tuple[int, str]) -> None:
        super().__init__(close[1])
        self.close = close


def _bearer(value: Any) -> str:
    if not isinstance(value, str):
        raise _Refused(UNAUTHORIZED)
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _Refused(UNAUTHORIZED)
    return token.strip()


class SocketRelay:
    def __init__(
        self,
        upstream_url: str,
        verifier: TokenVerifier,
        rate_limits: RateLimits,
        audit: AuditLog | None = None,
    ) -> None:
        self.upstream_url = (
            upstream_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1).rstrip("/")
        )
        self.verifier = verifier
        self.rate_limits = rate_limits
        self.audit = audit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        socket: WebSocket[Any, Any, Any] = WebSocket(scope, receive, send)
        correlation_id.set(accept_correlation_id(socket.headers.get("x-correlation-id")))
        started = time.perf_counter()
        principal: Principal | None = None
        closed = 1000
        try:
            principal, closed = await self._serve(socket)
        finally:
            if self.audit is not None:
                self._record(self.audit, socket, principal, closed, started)

    async def _serve(self, socket: WebSocket[Any, Any, Any]) -> tuple[Principal | None, int]:
        """The verified caller (if any) and the code the connection was closed with."""
        offered = socket.scope.get("subprotocols") or []
        if PROTOCOL not in offered:
            await socket.close(code=1002, reason=f"Subprotocol {PROTOCOL} required")
            return None, 1002
        await socket.accept(subprotocols=PROTOCOL)
        try:
            header = socket.headers.get("authorization")
            first: str | None = None
            if header is None:
                first = await asyncio.wait_for(socket.receive_text(), INIT_SECONDS)
                header = _init_authorization(first)
            principal = await self._principal(header)
            await self._admit(principal)
        except _Refused as refused:
            await socket.close(code=refused.close[0], reason=refused.close[1])
            return None, refused.close[0]
        except (TimeoutError, WebSocketDisconnect):
            with contextlib.suppress(Exception):
                await socket.close(code=4408, reason="Connection initialisation timeout")
            return None, 4408
        return principal, await self._relay(socket, header, first)

    def _record(
        self,
        audit: AuditLog,
        socket: WebSocket[Any, Any, Any],
        principal: Principal | None,
        closed: int,
        started: float,
    ) -> None:
        lifetime_ms = (time.perf_counter() - started) * 1000
        audit.record(
            AuditEntry(
                at=time.time() - lifetime_ms / 1000,
                client_id=principal.client_id if principal else None,
                customer_id=principal.customer_id if principal else None,
                method="WS",
                route="/graphql",
                path=socket.scope["path"],
                status=closed,
                latency_ms=lifetime_ms,
                correlation_id=correlation_id.get(),
            )
        )

    async def _principal(self, header: str) -> Principal:
        try:
            return await self.verifier.verify(_bearer(header))
        except AudienceNotGranted as exc:
            raise _Refused(FORBIDDEN) from exc
        except InvalidToken as exc:
            raise _Refused(UNAUTHORIZED) from exc

    async def _admit(self, principal: Principal) -> None:
        checked = await self.rate_limits.check(principal)
        if checked is not None and not checked[0].allowed:
            raise _Refused((4429, "Rate limit exceeded"))

    async def _relay(self, socket: WebSocket[Any, Any, Any], header: str, first: str | None) -> int:
        """Frames both ways until either side closes; the close code."""
        headers = {"Authorization": header, "X-Correlation-Id": correlation_id.get() or ""}
        try:
            upstream = await websockets.connect(
                self.upstream_url + "/graphql",
                subprotocols=[websockets.Subprotocol(PROTOCOL)],
                additional_headers={k: v for k, v in headers.items() if v},
                max_size=MAX_FRAME_BYTES * 16,
                open_timeout=10,
            )
        except (OSError, websockets.InvalidHandshake, TimeoutError):
            log.warning("graphql socket: the portal is unreachable")
            await socket.close(code=1011, reason="Upstream unavailable")
            return 1011
        async with upstream:
            if first is not None:
                await upstream.send(first)
            down = asyncio.create_task(_downstream(upstream, socket))
            up = asyncio.create_task(_upstream(socket, upstream))
            done, pending = await asyncio.wait({down, up}, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            codes = []
            for task in done:
                with contextlib.suppress(Exception):
                    codes.append(task.result())
        return next((code for code in codes if code), 1000)


def _init_authorization(text: str) -> str:
    try:
        message = json.loads(text)
    except ValueError as exc:
        raise _Refused((4400, "Invalid message")) from exc
    if not isinstance(message, dict) or message.get("type") != "connection_init":
        raise _Refused((4400, "connection_init expected"))
    payload = message.get("payload") or {}
    if not isinstance(payload, dict):
        raise _Refused((4400, "Invalid connection init payload"))
    value = payload.get("Authorization", payload.get("authorization"))
    if value is None:
        raise _Refused(UNAUTHORIZED)
    return str(value)


async def _downstream(upstream: ClientConnection, socket: WebSocket[Any, Any, Any]) -> int:
    """The portal's frames to the client; its close (code and reason) too."""
    try:
        async for frame in upstream:
            await socket.send_text(frame if isinstance(frame, str) else frame.decode())
    except websockets.ConnectionClosed:
        pass
    received = upstream.close_code or 1000
    code = received if received != 1006 else 1011
    with contextlib.suppress(Exception):
        await socket.close(code=code, reason=upstream.close_reason or "")
    return code


async def _upstream(socket: WebSocket[Any, Any, Any], upstream: ClientConnection) -> int:
    """The client's frames to the portal, until the client leaves (its close code)."""
    try:
        while True:
            text = await socket.receive_text()
            if len(text) > MAX_FRAME_BYTES:
                await upstream.close(code=1009, reason="Message too big")
                await socket.close(code=1009, reason="Message too big")
                return 1009
            await upstream.send(text)
    except WebSocketDisconnect as left:
        await upstream.close()
        return left.code or 1000
