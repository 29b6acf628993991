"""Streams one request to a service and its answer back, over ONE shared aiohttp
session (a keep-alive pool; connect 2 s, total 30 s)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast
from urllib.parse import quote

import aiohttp
from litestar.types import HTTPScope, Receive, Send
from yarl import URL

from gateway.routing.headers import request_headers, response_headers
from gateway.routing.problems import send_problem
from shared.correlation import child_traceparent, correlation_id, traceparent

log = logging.getLogger("tally.gateway.forward")

CONNECT_TIMEOUT = 2.0
TOTAL_TIMEOUT = 30.0
# Below uvicorn's 5 s keep-alive, so the pool does not reuse a socket the service is closing.
KEEPALIVE_SECONDS = 4.0
_RETRYABLE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class UpstreamError(Exception):
    """The service could not be reached or did not answer in time."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class CallerGone(Exception):
    """The caller disconnected while its body was being forwarded."""


def _has_body(scope: HTTPScope) -> bool:
    for name, value in scope["headers"]:
        if name == b"transfer-encoding":
            return True
        if name == b"content-length":
            return value.strip() not in (b"", b"0")
    return False


def _target(base_url: str, scope: HTTPScope) -> URL:
    raw_path = scope.get("raw_path")
    path = raw_path.decode("latin-1") if raw_path else quote(scope["path"])
    query = scope.get("query_string", b"").decode("latin-1")
    return URL(base_url.rstrip("/") + path + (f"?{query}" if query else ""), encoded=True)


class _Body:
    """The caller's body as it arrives (ASGI receive), for aiohttp to stream on."""

    def __init__(self, receive: Receive) -> None:
        self.receive = receive
        self.caller_gone = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                self.caller_gone = True
                raise CallerGone
            chunk = cast("bytes", message.get("body", b""))
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                return


class Forwarder:
    def __init__(
        self,
        *,
        connect_timeout: float = CONNECT_TIMEOUT,
        total_timeout: float = TOTAL_TIMEOUT,
        pool_size: int = 256,
    ) -> None:
        self.timeout = aiohttp.ClientTimeout(total=total_timeout, sock_connect=connect_timeout)
        self.pool_size = pool_size
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("the forwarder is not started (lifespan did not run)")
        return self._session

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=self.timeout,
                connector=aiohttp.TCPConnector(
                    limit=self.pool_size, keepalive_timeout=KEEPALIVE_SECONDS
                ),
                auto_decompress=False,  # bytes pass through as the service encoded them
                cookie_jar=aiohttp.DummyCookieJar(),  # never share cookies between callers
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @asynccontextmanager
    async def lifespan(self, _app: Any) -> AsyncIterator[None]:
        await self.start()
        try:
            yield
        finally:
            await self.close()

    async def forward(
        self, scope: HTTPScope, receive: Receive, send: Send, base_url: str, name: str
    ) -> None:
        """Relays the call; a problem (502/504) only while nothing has been sent yet."""
        method = scope["method"]
        has_body = _has_body(scope)
        client = scope.get("client")
        headers = request_headers(
            scope["headers"],
            correlation_id=correlation_id.get() or "",
            traceparent=child_traceparent(traceparent.get()),
            client_host=client[0] if client else None,
            scheme=scope.get("scheme", "http"),
        )
        url = _target(base_url, scope)
        attempts = 1 if has_body or method not in _RETRYABLE_METHODS else 2
        for attempt in range(attempts):
            body = _Body(receive) if has_body else None
            try:
                await self._relay(method, url, headers, body, send)
                return
            except CallerGone:
                return
            except aiohttp.ServerDisconnectedError:
                if attempt + 1 < attempts:  # a pooled socket the service had just closed
                    continue
                await self._fail(send, scope, 502, f"The {name} service closed the connection.")
                return
            except TimeoutError:
                await self._fail(send, scope, 504, f"The {name} service did not answer in time.")
                return
            except aiohttp.ClientError as exc:
                if body is not None and body.caller_gone:
                    log.info("%s %s: the caller went away mid-body", method, scope["path"])
                    return
                log.info("%s unreachable: %r", url, exc)
                await self._fail(send, scope, 502, f"The {name} service is unreachable.")
                return

    async def _relay(
        self, method: str, url: URL, headers: Any, body: _Body | None, send: Send
    ) -> None:
        response = await self.session.request(
            method, url, headers=headers, data=body, allow_redirects=False
        )
        async with response:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status,
                    "headers": response_headers(response.raw_headers),
                }
            )
            # From here on the status is sent: a failure can only cut the connection,
            # which returning without the final body message does.
            try:
                if method != "HEAD":
                    async for chunk in response.content.iter_any():
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except (TimeoutError, aiohttp.ClientError) as exc:
                log.warning("the answer from %s broke off: %r", url, exc)
                return
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _fail(self, send: Send, scope: HTTPScope, status: int, detail: str) -> None:
        log.warning("%s %s -> %s: %s", scope["method"], scope["path"], status, detail)
        await send_problem(send, status, detail, instance=scope["path"])

    async def get(self, url: str, name: str) -> tuple[int, bytes]:
        """A plain GET with the correlation headers (the contract catalog's documents)."""
        headers = {
            "X-Correlation-Id": correlation_id.get() or "",
            "traceparent": child_traceparent(traceparent.get()),
            "Accept": "application/json",
        }
        try:
            async with self.session.get(url, headers=headers) as response:
                return response.status, await response.read()
        except TimeoutError as exc:
            raise UpstreamError(504, f"The {name} service did not answer in time.") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError(502, f"The {name} service is unreachable.") from exc
