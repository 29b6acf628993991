"""Streams one request to a service and its answer back.

Forwarded calls go over ``http1``: one keep-alive pool per service (connect 2 s, a
deadline of 30 s per call unless the route has its own), bodies streamed both ways.
The contract catalog's occasional GETs use one shared aiohttp session.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast
from urllib.parse import quote

import aiohttp
from litestar.types import HTTPScope, Receive, Send

from gateway.routing.headers import request_head, response_headers
from gateway.routing.problems import send_problem
from shared.correlation import child_traceparent, correlation_id, traceparent
from shared.http1 import Connection, Pool, UpstreamClosed, UpstreamTimeout, send_body

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


class BodyTooLarge(Exception):
    """The caller's (chunked) body grew past the limit while it streamed."""


def _body_framing(scope: HTTPScope) -> tuple[bool, bool]:
    """(has a body, must be chunk-framed): a known Content-Length is kept as it is."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            return value.strip() not in (b"", b"0"), False
        if name == b"transfer-encoding":
            return True, True
    return False, False


def _target(prefix: bytes, scope: HTTPScope) -> bytes:
    raw_path = scope.get("raw_path") or quote(scope["path"]).encode("latin-1")
    query = scope.get("query_string", b"")
    return prefix + raw_path + (b"?" + query if query else b"")


class _Body:
    """The caller's body as it arrives (ASGI receive), counted against the limit."""

    def __init__(self, receive: Receive, limit: int | None) -> None:
        self.receive = receive
        self.limit = limit

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise CallerGone
            chunk = cast("bytes", message.get("body", b""))
            if chunk:
                seen += len(chunk)
                if self.limit is not None and seen > self.limit:
                    raise BodyTooLarge
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
        self.connect_timeout = connect_timeout
        self.total_timeout = total_timeout
        self.pool_size = pool_size
        self.timeout = aiohttp.ClientTimeout(total=total_timeout, sock_connect=connect_timeout)
        self._session: aiohttp.ClientSession | None = None
        self._pools: dict[str, Pool] = {}

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("the forwarder is not started (lifespan did not run)")
        return self._session

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=self.timeout,
                connector=aiohttp.TCPConnector(limit=16, keepalive_timeout=KEEPALIVE_SECONDS),
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),
            )

    async def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()
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

    def _pool(self, base_url: str) -> Pool:
        pool = self._pools.get(base_url)
        if pool is None:
            pool = self._pools[base_url] = Pool(
                base_url,
                max_idle=self.pool_size,
                idle_seconds=KEEPALIVE_SECONDS,
                connect_timeout=self.connect_timeout,
            )
        return pool

    async def forward(
        self,
        scope: HTTPScope,
        receive: Receive,
        send: Send,
        base_url: str,
        name: str,
        *,
        upstream_timeout: float | None = None,
        max_body: int | None = None,
    ) -> None:
        """Relays the call; a problem (413/502/504) only while nothing has been sent yet.
        ``upstream_timeout``: this route's deadline in seconds, else the default;
        ``max_body``: bytes a streamed body may reach before the call is cut with 413."""
        method = scope["method"]
        has_body, chunked = _body_framing(scope)
        pool = self._pool(base_url)
        client = scope.get("client")
        head = request_head(
            method,
            _target(pool.prefix, scope),
            scope["headers"],
            upstream_host=pool.host_header,
            correlation_id=correlation_id.get() or "",
            traceparent=child_traceparent(traceparent.get()),
            client_host=client[0] if client else None,
            scheme=scope.get("scheme", "http"),
            chunked=chunked,
        )
        retryable = not has_body and method in _RETRYABLE_METHODS
        deadline = upstream_timeout or self.total_timeout
        loop = asyncio.get_running_loop()
        while True:
            try:
                connection, pooled = await pool.acquire()
            except (TimeoutError, OSError) as exc:
                log.info("%s unreachable: %r", name, exc)
                status = 504 if isinstance(exc, TimeoutError) else 502
                detail = f"The {name} service is unreachable."
                if status == 504:
                    detail = f"The {name} service did not answer in time."
                await self._fail(send, scope, status, detail)
                return
            timer = loop.call_later(deadline, connection.fail, UpstreamTimeout())
            try:
                connection.begin(head_only=method == "HEAD")
                started = await self._exchange(
                    connection, head, receive, send, has_body, chunked, max_body
                )
            except (CallerGone, BodyTooLarge, UpstreamClosed, TimeoutError, OSError) as exc:
                connection.close()
                timer.cancel()
                if connection.relayed:  # the status is out: all we can do is cut
                    log.warning("%s %s broke off: %r", method, scope["path"], exc)
                    return
                if (
                    pooled
                    and retryable
                    and isinstance(exc, UpstreamClosed)
                    and not connection.received
                ):
                    continue  # a pooled socket the service had just closed: once more, fresh
                await self._refused(exc, send, scope, name, max_body)
                return
            timer.cancel()
            if started:
                pool.release(connection)
            else:
                connection.close()
            return

    async def _exchange(
        self,
        connection: Connection,
        head: bytes,
        receive: Receive,
        send: Send,
        has_body: bool,
        chunked: bool,
        max_body: int | None,
    ) -> bool:
        """Sends the request, relays the answer. Raises before the status is relayed;
        after it, a broken upstream returns False (the caller's connection is cut by
        not sending the final body message)."""
        connection.write(head)
        if has_body:
            await send_body(connection, _Body(receive, max_body), chunked)
        await connection.head()
        connection.relayed = True
        await send(
            {
                "type": "http.response.start",
                "status": connection.status,
                "headers": response_headers(connection.headers),
            }
        )
        try:
            while (chunk := await connection.next_chunk()) is not None:
                # The last chunk goes out as the final message: one write less per call.
                last = connection.complete and not connection.chunks
                await send({"type": "http.response.body", "body": chunk, "more_body": not last})
                if last:
                    return True
        except (UpstreamClosed, TimeoutError) as exc:
            log.warning("the answer from the service broke off: %r", exc)
            return False
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return True

    async def _refused(
        self, exc: Exception, send: Send, scope: HTTPScope, name: str, max_body: int | None
    ) -> None:
        if isinstance(exc, CallerGone):
            log.info("%s %s: the caller went away mid-body", scope["method"], scope["path"])
        elif isinstance(exc, BodyTooLarge):
            # The service got an unfinished request on a socket now aborted: it acts on nothing.
            detail = f"The request body is larger than {max_body} bytes."
            await send_problem(send, 413, detail, instance=scope["path"])
        elif isinstance(exc, TimeoutError):
            await self._fail(send, scope, 504, f"The {name} service did not answer in time.")
        elif isinstance(exc, UpstreamClosed):
            await self._fail(send, scope, 502, f"The {name} service closed the connection.")
        else:
            log.info("%s: %r", name, exc)
            await self._fail(send, scope, 502, f"The {name} service is unreachable.")

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
