"""An httpx transport on ``shared.http1``: callers keep httpx's API (``httpx.Response``,
its exceptions, the client's timeouts), the wire work is the small keep-alive client
the gateway forwards with (asyncio protocols + httptools), not httpcore/anyio.

What it does, per call:

- one ``Pool`` per (scheme, host, port), at most ``max_connections`` exchanges at once
  per pool (more wait up to the pool timeout: ``httpx.PoolTimeout``), up to
  ``max_idle`` idle keep-alive sockets kept ``idle_seconds``;
- the request head (httpx's method, raw path, raw headers: Host, Content-Length and the
  rest are httpx's) and the whole body in one write (bodies are read into memory);
- the answer read whole, handed to httpx as a plain byte stream with the headers as they
  came (already de-chunked; httpx decodes Content-Encoding when it reads the stream);
- timeouts from the request: connect for a new socket; write while a large body waits
  to be sent; read bounds the whole answer from the end of the request (answers here
  are small and read whole, so this is httpx's per-read timeout in practice);
- errors as httpx's: ``ConnectError``/``ConnectTimeout``, ``WriteTimeout``,
  ``ReadTimeout``, ``RemoteProtocolError`` (closed or unparsable before the answer was
  complete), each with the request attached;
- a pooled socket found closed before any byte of the answer is retried once on a new
  socket, for idempotent methods and calls carrying an Idempotency-Key (like the
  gateway's forwarder); never once any byte of the answer has arrived;
- a socket goes back to the pool only after a clean, complete keep-alive exchange; an
  error or a cancellation mid-exchange closes it.

No redirects, cookies or auth here: those stay in ``httpx.AsyncClient``. No HTTP/2, no
proxies (httpx's own proxy mounts still apply), and https uses the default SSL context
(the client's ``verify`` is not consulted).
"""

from __future__ import annotations

import asyncio
import contextlib

import httpx

from shared.http1 import Connection, Pool, UpstreamClosed, UpstreamTimeout

MAX_CONNECTIONS = 100
MAX_IDLE = 100
# Below uvicorn's 5 s keep-alive (every service runs uvicorn's default), so the pool does
# not hand out a socket the service is about to close; httpx's own expiry was 5 s.
IDLE_SECONDS = 4.0
# The transport's write buffer holds this much without waiting (asyncio's high-water
# mark); a larger body may have to wait for the socket, under the write timeout.
_UNBUFFERED_BODY = 64 * 1024
_RESENDABLE = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


class _ReadTimedOut(UpstreamTimeout):
    pass


class _WriteTimedOut(UpstreamTimeout):
    pass


class _Route:
    """One origin's pool and the count of exchanges it may run at once."""

    __slots__ = ("pool", "slots")

    def __init__(self, pool: Pool, max_connections: int) -> None:
        self.pool = pool
        self.slots = asyncio.Semaphore(max_connections)


class Http1Transport(httpx.AsyncBaseTransport):
    def __init__(
        self,
        *,
        max_connections: int = MAX_CONNECTIONS,
        max_idle: int = MAX_IDLE,
        idle_seconds: float = IDLE_SECONDS,
    ) -> None:
        self.max_connections = max_connections
        self.max_idle = max_idle
        self.idle_seconds = idle_seconds
        self._routes: dict[tuple[str, bytes, int], _Route] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        route = self._route(request)
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        # After aread() the stream is a ByteStream, whatever it was: look before.
        chunked = not isinstance(request.stream, httpx.ByteStream) and _chunked(request)
        head = _head(request, await request.aread(), chunked)
        await _take(route, request, timeouts.get("pool"))
        try:
            return await self._exchange(route.pool, request, head, timeouts)
        finally:
            route.slots.release()

    async def aclose(self) -> None:
        self._closed = True
        self._drop_pools()

    def _route(self, request: httpx.Request) -> _Route:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # sockets and semaphores belong to one event loop
            self._drop_pools()
            self._loop = loop
        url = request.url
        scheme = url.scheme
        default_port = _DEFAULT_PORTS.get(scheme)
        if default_port is None:
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {scheme!r}", request=request)
        key = (scheme, url.raw_host, url.port or default_port)
        route = self._routes.get(key)
        if route is None:
            host = url.raw_host.decode("ascii")
            if ":" in host:  # IPv6
                host = f"[{host}]"
            pool = Pool(
                f"{scheme}://{host}:{key[2]}",
                max_idle=self.max_idle,
                idle_seconds=self.idle_seconds,
                connect_timeout=5.0,  # each call passes its own
            )
            route = self._routes[key] = _Route(pool, self.max_connections)
        return route

    def _drop_pools(self) -> None:
        for route in self._routes.values():
            with contextlib.suppress(RuntimeError):  # a loop already closed
                route.pool.close()
        self._routes.clear()

    async def _exchange(
        self,
        pool: Pool,
        request: httpx.Request,
        head: bytes,
        timeouts: dict[str, float | None],
    ) -> httpx.Response:
        fresh = False
        while True:
            connection, pooled = await _connect(pool, request, timeouts.get("connect"), fresh)
            try:
                response = await _once(connection, request, head, timeouts)
            except UpstreamClosed as exc:
                if pooled and not connection.received and _resendable(request):
                    fresh = True  # a socket the service had closed: once more, on a new one
                    continue
                raise _closed_error(exc, connection, request) from exc
            except _WriteTimedOut as exc:
                raise httpx.WriteTimeout(
                    "the request could not be sent in time", request=request
                ) from exc
            except TimeoutError as exc:
                raise httpx.ReadTimeout(
                    "the service did not answer in time", request=request
                ) from exc
            except OSError as exc:
                raise httpx.ReadError(str(exc) or repr(exc), request=request) from exc
            if self._closed:
                connection.close()
            else:
                pool.release(connection)
            return response


def _head(request: httpx.Request, body: bytes, chunked: bool) -> bytes:
    """The request head and body as they go on the wire."""
    raw = request.headers.raw
    lines = [b"%s %s HTTP/1.1" % (request.method.encode("ascii"), request.url.raw_path)]
    lines += [name + b": " + value for name, value in raw]
    lines += [b"", b""]
    head = b"\r\n".join(lines)
    # A CR or LF inside a header would start a header (or a request) of its own.
    if head.count(b"\n") != len(raw) + 2 or head.count(b"\r") != len(raw) + 2:
        raise httpx.LocalProtocolError("CR or LF in a request header", request=request)
    if chunked:  # a streamed body of unknown length, read whole: one chunk
        body = b"%x\r\n%b\r\n0\r\n\r\n" % (len(body), body) if body else b"0\r\n\r\n"
    return head + body if body else head


def _chunked(request: httpx.Request) -> bool:
    return "chunked" in request.headers.get("transfer-encoding", "").lower()


def _resendable(request: httpx.Request) -> bool:
    return request.method in _RESENDABLE or "idempotency-key" in request.headers


async def _take(route: _Route, request: httpx.Request, pool_timeout: float | None) -> None:
    """One of the route's exchange slots, waiting up to the pool timeout for one."""
    slots = route.slots
    if not slots.locked():
        await slots.acquire()  # returns at once
        return
    try:
        async with asyncio.timeout(pool_timeout):
            await slots.acquire()
    except TimeoutError as exc:
        raise httpx.PoolTimeout("no connection free in time", request=request) from exc


async def _connect(
    pool: Pool, request: httpx.Request, connect_timeout: float | None, fresh: bool
) -> tuple[Connection, bool]:
    try:
        return await pool.acquire(connect_timeout, fresh=fresh)
    except TimeoutError as exc:  # UpstreamTimeout included
        raise httpx.ConnectTimeout("connect timed out", request=request) from exc
    except OSError as exc:  # refused, unreachable, unknown host, TLS
        raise httpx.ConnectError(str(exc) or repr(exc), request=request) from exc


async def _once(
    connection: Connection,
    request: httpx.Request,
    head: bytes,
    timeouts: dict[str, float | None],
) -> httpx.Response:
    """One exchange on ``connection``; any failure (cancellation included) closes it."""
    loop = connection.loop
    read_timeout = timeouts.get("read")
    timer: asyncio.TimerHandle | None = None
    connection.begin(head_only=request.method == "HEAD")
    try:
        connection.write(head)
        if len(head) > _UNBUFFERED_BODY:
            await _drain(connection, timeouts.get("write"))
        if read_timeout is not None:
            timer = loop.call_later(read_timeout, connection.fail, _ReadTimedOut())
        await connection.head()
        chunks: list[bytes] = []
        while (chunk := await connection.next_chunk()) is not None:
            chunks.append(chunk)
    except BaseException:
        connection.close()
        raise
    finally:
        if timer is not None:
            timer.cancel()
    content = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    return httpx.Response(
        connection.status,
        headers=connection.headers,
        stream=httpx.ByteStream(content),
        request=request,
        extensions={"http_version": b"HTTP/1.1"},
    )


async def _drain(connection: Connection, write_timeout: float | None) -> None:
    if write_timeout is None:
        await connection.drain()
        return
    timer = connection.loop.call_later(write_timeout, connection.fail, _WriteTimedOut())
    try:
        await connection.drain()
    finally:
        timer.cancel()


def _closed_error(
    exc: UpstreamClosed, connection: Connection, request: httpx.Request
) -> httpx.TransportError:
    if not connection.received:
        message = "the service closed the connection without answering"
    elif connection.status:
        message = f"the answer broke off: {exc}"
    else:
        message = str(exc)
    return httpx.RemoteProtocolError(message, request=request)
