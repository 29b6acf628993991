"""A response's writes of one loop turn leave in one send (``shared.http_server``):
its head and body reach the caller together; a later turn's write (a streamed chunk)
follows in order; a close sends what was written before it. Served for real too: every
service in the suite runs on this protocol (``tests/support/stack.ThreadServer``)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from shared.http_server import _GatheredWrites
from tests.support.stack import ThreadServer


class _Recorded(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.sent: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.sent.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


async def test_the_writes_of_one_turn_leave_together_and_in_order() -> None:
    transport = _Recorded()
    gathered = _GatheredWrites(transport, asyncio.get_running_loop())
    gathered.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    gathered.write(b"ok")
    assert transport.sent == []  # until the end of the turn
    await asyncio.sleep(0)
    assert transport.sent == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"]
    gathered.write(b"next")
    await asyncio.sleep(0)
    assert transport.sent[1:] == [b"next"]


async def test_a_close_sends_what_was_written_before_it() -> None:
    transport = _Recorded()
    gathered = _GatheredWrites(transport, asyncio.get_running_loop())
    gathered.write(b"last words")
    gathered.close()
    assert transport.sent == [b"last words"] and transport.closed
    await asyncio.sleep(0)
    assert transport.sent == [b"last words"]  # not twice


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]}
    )
    await send({"type": "http.response.body", "body": b"hello"})


def test_a_served_answer_arrives_whole_in_one_read() -> None:
    """The caller blocks on its read as soon as the request is sent: the head written
    alone would wake it without the body."""
    with ThreadServer(_app, health_path=None) as server:
        for _ in range(20):
            with socket.create_connection(("127.0.0.1", server.port)) as sock:
                sock.sendall(b"GET / HTTP/1.1\r\nhost: test\r\n\r\n")
                answer = sock.recv(65536)
            assert answer.startswith(b"HTTP/1.1 200 OK\r\n"), answer
            assert answer.endswith(b"\r\n\r\nhello"), answer
