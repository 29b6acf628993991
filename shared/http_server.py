"""uvicorn's HTTP/1.1 protocol (httptools) with a response's writes gathered into one.

uvicorn writes a response's status line and headers, then its body, each with a write
of its own: two sends on the socket, and the caller (a service, the gateway) woken
twice to read one answer. Every internal call and every answer through the gateway
paid that. Here the writes made in one turn of the event loop go out together at the
end of the turn (``loop.call_soon``): the head and the body of an answer leave in one
send. A write of a later turn (a streamed body's next chunk) goes in a send of its own,
in order. Served with ``uvicorn --http shared.http_server:HttpProtocol``."""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class _GatheredWrites:
    """The connection's transport, its writes of one loop turn sent together; every
    other call goes to the transport itself."""

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not data:
            return
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        if pending and not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        self._flush()  # what was written before the close goes first
        self._transport.close()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._pending))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class HttpProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_GatheredWrites(transport, self.loop))  # type: ignore[arg-type]
