"""A small HTTP/1.1 client for the hot paths: keep-alive connection pools per service
on asyncio protocols, responses parsed by httptools (the parser uvicorn uses), bodies
streamed both ways with flow control. The gateway's forwarder uses it directly; the
services' calls to each other go through it behind httpx (``shared.http_transport``).

Why not aiohttp here (docs/decisions/0013): per call, aiohttp's ClientSession builds
request/response objects, a header multidict, a timer context and a payload writer
task; on this machine that was most of the gateway's CPU per forwarded call. This
client writes one pre-joined request head and hands the parsed status, headers and
body chunks straight to ASGI. It does only what forwarding needs: no redirects, no
cookies, no decompression, no proxies.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import AsyncIterable
from types import EllipsisType
from typing import cast
from urllib.parse import urlsplit

import httptools

_FRAMING = frozenset({b"content-length", b"transfer-encoding"})
# Buffered response chunks before the socket stops reading (the caller is slow).
_MAX_BUFFERED_CHUNKS = 32


class UpstreamClosed(ConnectionError):
    """The service closed the connection (or sent something unparsable) before the
    answer was complete."""


class UpstreamTimeout(TimeoutError):
    """The call took longer than its deadline."""


class Connection(asyncio.Protocol):
    """One keep-alive socket to a service, used by one exchange at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: deque[bytes] = deque()
        self.complete = False
        self.received = False  # any byte of this exchange's answer
        self.error: BaseException | None = None
        self.head_only = False
        self.relayed = False  # the status line went to the caller
        self.keep_alive = False
        self._head_done = False
        self._until_close = False
        self._waiter: asyncio.Future[None] | None = None
        self._reading_paused = False
        self._writable = True
        self._drain: asyncio.Future[None] | None = None

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.fail(UpstreamClosed(f"unparsable answer: {exc}"))

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._until_close and exc is None:
            self.complete = True
            self._wake()
        elif not self.complete:
            self.fail(UpstreamClosed("the service closed the connection"))
        self._resume_writers()

    def pause_writing(self) -> None:
        self._writable = False

    def resume_writing(self) -> None:
        self._writable = True
        self._resume_writers()

    # -- httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200:  # an interim answer (103 Early Hints): wait for the real one
            self.headers = []
            return
        self.status = status
        self.keep_alive = self.parser.should_keep_alive()  # only valid at this point
        self._head_done = True
        if self.head_only:  # the answer to HEAD has no body, whatever it declares
            self.complete = True
        else:  # neither a length nor chunks: the body runs until the service closes
            framed = any(name.lower() in _FRAMING for name, _ in self.headers)
            self._until_close = not framed and status not in (204, 304)
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        if len(self.chunks) >= _MAX_BUFFERED_CHUNKS and self.transport is not None:
            self.transport.pause_reading()
            self._reading_paused = True
        self._wake()

    def on_message_complete(self) -> None:
        if self.status >= 200:
            self.complete = True
            self._wake()

    # -- used by the exchange
    def begin(self, head_only: bool) -> None:
        self.status = 0
        self.headers = []
        self.chunks.clear()
        self.complete = False
        self.received = False
        self.error = None
        self.head_only = head_only
        self.relayed = False
        self.keep_alive = False
        self._head_done = False
        self._until_close = False

    def fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        self._wake()
        self._resume_writers()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()  # never half-written state back into any pool

    def reusable(self) -> bool:
        return (
            self.complete
            and not self.closed
            and self.error is None
            and not self.head_only
            and self.keep_alive
        )

    def write(self, data: bytes) -> None:
        if self.error is not None:
            raise self.error
        assert self.transport is not None
        self.transport.write(data)

    async def drain(self) -> None:
        if self.error is not None:
            raise self.error
        if not self._writable:
            self._drain = self.loop.create_future()
            await self._drain
            if self.error is not None:
                raise self.error

    async def head(self) -> None:
        while not self._head_done:
            if self.error is not None:
                raise self.error
            await self._wait()

    async def next_chunk(self) -> bytes | None:
        """The next body chunk, or None at the end of the answer."""
        while True:
            if self.chunks:
                chunk = self.chunks.popleft()
                if self._reading_paused and len(self.chunks) < _MAX_BUFFERED_CHUNKS // 2:
                    self._reading_paused = False
                    if self.transport is not None:
                        self.transport.resume_reading()
                return chunk
            if self.complete:
                return None
            if self.error is not None:
                raise self.error
            await self._wait()

    async def _wait(self) -> None:
        self._waiter = self.loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _resume_writers(self) -> None:
        drain = self._drain
        if drain is not None and not drain.done():
            drain.set_result(None)
        self._drain = None


class Pool:
    """Idle keep-alive connections to one service (``scheme://host:port[/prefix]``)."""

    def __init__(
        self, base_url: str, *, max_idle: int, idle_seconds: float, connect_timeout: float
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) service URL: {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self.prefix = parts.path.rstrip("/").encode("latin-1")
        default_port = self.port == (443 if self.ssl else 80)
        self.host_header = (self.host if default_port else f"{self.host}:{self.port}").encode()
        self.max_idle = max_idle
        self.idle_seconds = idle_seconds
        self.connect_timeout = connect_timeout
        self._idle: list[tuple[Connection, float]] = []

    async def acquire(
        self, connect_timeout: float | EllipsisType | None = ..., *, fresh: bool = False
    ) -> tuple[Connection, bool]:
        """A connection and whether it was pooled (a pooled one may be stale).
        ``connect_timeout``: this call's limit for a new connection (None: no limit),
        else the pool's; ``fresh``: a new connection, whatever is idle."""
        limit = (
            self.connect_timeout if isinstance(connect_timeout, EllipsisType) else connect_timeout
        )
        now = time.monotonic()
        while self._idle and not fresh:
            connection, since = self._idle.pop()
            if connection.closed or now - since > self.idle_seconds:
                connection.close()
                continue
            return connection, True
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(limit):
                _, protocol = await loop.create_connection(
                    lambda: Connection(loop), self.host, self.port, ssl=self.ssl
                )
        except TimeoutError as exc:
            raise UpstreamTimeout("connect timed out") from exc
        return protocol, False

    def release(self, connection: Connection) -> None:
        if connection.reusable() and len(self._idle) < self.max_idle:
            self._idle.append((connection, time.monotonic()))
        else:
            connection.close()

    def close(self) -> None:
        for connection, _ in self._idle:
            connection.close()
        self._idle.clear()


async def send_body(connection: Connection, body: AsyncIterable[bytes], chunked: bool) -> None:
    """Writes the caller's body as it arrives (chunk-framed when its length is unknown)."""
    async for chunk in body:
        if chunked:
            connection.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
        else:
            connection.write(chunk)
        await connection.drain()
    if chunked:
        connection.write(b"0\r\n\r\n")
