"""``Http1Transport`` (shared/http_transport.py) against real servers on loopback ports:
uvicorn serving a small ASGI app for the well-behaved answers, and a raw asyncio server
that misbehaves on purpose (closes kept-alive sockets, never answers, breaks off)."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any, cast

import httpx
import pytest

from shared.auth.service_tokens import ServiceTokens
from shared.http import CLIENT_ENV, Downstream, new_http_client
from shared.http_transport import Http1Transport
from shared.problems import ProblemError
from tests.support.ports import closed_port_url
from tests.support.stack import ThreadServer

BIG = 1024 * 1024


# -- a well-behaved server: uvicorn ---------------------------------------------------


async def _read_body(receive: Any) -> bytes:
    parts = []
    while True:
        message = await receive()
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts)


async def _answer(send: Any, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    length = [] if status == 204 else [(b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers + length})
    await send({"type": "http.response.body", "body": body})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """/echo: what came (method, query, headers, JSON body, the client's port: one port,
    one connection); /chunked: a body of unknown length; /big: the request body back
    (or 1 MB); /gzip: a gzip-encoded JSON; /empty: 204."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = await _read_body(receive)
    path = scope["path"]
    json_type = [(b"content-type", b"application/json")]
    if path == "/echo":
        seen = {
            "method": scope["method"],
            "query": scope["query_string"].decode(),
            "headers": {k.decode(): v.decode() for k, v in scope["headers"]},
            "json": json.loads(body) if body else None,
            "port": scope["client"][1],
        }
        await _answer(send, 200, json.dumps(seen).encode(), [*json_type, (b"x-echo", b"yes")])
    elif path == "/chunked":
        await send({"type": "http.response.start", "status": 200, "headers": json_type})
        for part in (b'{"parts": [', b'"a", ', b'"b"', b"]}"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/big":
        await _answer(send, 200, body or bytes(range(256)) * (BIG // 256), [])
    elif path == "/gzip":
        encoded = gzip.compress(b'{"zipped": true}')
        await _answer(send, 200, encoded, [*json_type, (b"content-encoding", b"gzip")])
    elif path == "/empty":
        await _answer(send, 204, b"", [])
    else:
        await _answer(send, 404, b"", [])


@pytest.fixture(scope="module")
def uvicorn_url() -> Iterator[str]:
    with ThreadServer(app, health_path=None) as server:
        yield server.url


# -- a misbehaving server: raw asyncio --------------------------------------------------


class RawServer:
    """Answers ``/ok`` with the connection's number and how many requests it served;
    ``/close-after-answer`` answers, then closes (an idle keep-alive timeout);
    ``/hangup-on-second``: a connection's second request is met with a close, nothing
    sent (the service closing the socket as the request arrives); ``/never`` reads and
    never answers; ``/partial`` sends the head and 10 bytes of 100, then closes."""

    def __init__(self) -> None:
        self.accepted = 0
        self.writers: set[asyncio.StreamWriter] = set()
        self.server: asyncio.Server | None = None
        self.url = ""

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self.writers):
            writer.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        number = self.accepted
        self.writers.add(writer)
        try:
            await self._requests(number, reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.writers.discard(writer)
            writer.close()

    async def _requests(
        self, number: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        served = 0
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *fields = head.decode("latin-1").split("\r\n")
            length = 0
            for field in fields:
                name, _, value = field.partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            await reader.readexactly(length)
            served += 1
            target = request_line.split(" ")[1]
            if target == "/hangup-on-second" and served > 1:
                return
            if target == "/never":
                await reader.read(1)  # until the client gives up
                return
            if target == "/partial":
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
                await writer.drain()
                return
            body = json.dumps({"connection": number, "served": served}).encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body))
            await writer.drain()
            if target == "/close-after-answer":
                return


@pytest.fixture
async def raw() -> AsyncIterator[RawServer]:
    server = RawServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=Http1Transport(), timeout=5.0) as c:
        yield c


# -- round trips ------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST", "PUT"])
async def test_status_headers_and_json_round_trip(
    client: httpx.AsyncClient, uvicorn_url: str, method: str
) -> None:
    sent = {"sku": "SKU-1", "quantity": 3, "note": "é"} if method != "GET" else None
    response = await client.request(
        method, f"{uvicorn_url}/echo?a=1&b=x%20y", json=sent, headers={"X-Trace": "t-1"}
    )
    assert response.status_code == 200 and response.is_success
    assert response.headers["x-echo"] == "yes"
    assert response.headers["content-type"] == "application/json"
    assert response.http_version == "HTTP/1.1"
    assert str(response.request.url) == f"{uvicorn_url}/echo?a=1&b=x%20y"
    seen = response.json()
    assert seen["method"] == method
    assert seen["query"] == "a=1&b=x%20y"
    assert seen["headers"]["x-trace"] == "t-1"
    assert seen["headers"]["host"] == uvicorn_url.removeprefix("http://")
    assert seen["json"] == sent
    assert json.loads(response.text) == seen


async def test_a_chunked_answer_is_handed_over_whole(
    client: httpx.AsyncClient, uvicorn_url: str
) -> None:
    response = await client.get(f"{uvicorn_url}/chunked")
    assert response.status_code == 200
    assert response.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in response.headers
    assert response.json() == {"parts": ["a", "b"]}
    assert response.content == b'{"parts": ["a", "b"]}'


async def test_a_gzip_answer_is_decoded_by_httpx(
    client: httpx.AsyncClient, uvicorn_url: str
) -> None:
    response = await client.get(f"{uvicorn_url}/gzip")
    assert response.headers["content-encoding"] == "gzip"
    assert response.json() == {"zipped": True}


async def test_a_megabyte_each_way(client: httpx.AsyncClient, uvicorn_url: str) -> None:
    answer = await client.get(f"{uvicorn_url}/big")
    assert answer.content == bytes(range(256)) * (BIG // 256)
    assert answer.headers["content-length"] == str(BIG)
    sent = bytes(reversed(range(256))) * (BIG // 256)
    echoed = await client.post(f"{uvicorn_url}/big", content=sent)
    assert echoed.content == sent


async def test_a_streamed_request_body_goes_chunked(
    client: httpx.AsyncClient, uvicorn_url: str
) -> None:
    async def parts() -> AsyncIterator[bytes]:
        yield b'{"streamed": '
        yield b"true}"

    response = await client.post(f"{uvicorn_url}/echo", content=parts())
    assert response.json()["json"] == {"streamed": True}
    assert response.json()["headers"]["transfer-encoding"] == "chunked"


async def test_head_and_204_have_no_body(client: httpx.AsyncClient, uvicorn_url: str) -> None:
    head = await client.head(f"{uvicorn_url}/big")
    assert head.status_code == 200 and head.content == b""
    empty = await client.delete(f"{uvicorn_url}/empty")
    assert empty.status_code == 204 and empty.content == b""
    after = await client.get(f"{uvicorn_url}/echo")  # nothing left over on the socket
    assert after.json()["method"] == "GET"


async def test_a_header_with_a_line_break_is_refused(
    client: httpx.AsyncClient, uvicorn_url: str
) -> None:
    with pytest.raises(httpx.LocalProtocolError):
        await client.get(f"{uvicorn_url}/echo", headers={"X-Evil": "a\r\nX-Injected: 1"})


# -- keep-alive -------------------------------------------------------------------------


async def test_sequential_calls_share_one_connection(
    client: httpx.AsyncClient, uvicorn_url: str
) -> None:
    ports = {(await client.get(f"{uvicorn_url}/echo")).json()["port"] for _ in range(20)}
    assert len(ports) == 1


async def test_fifty_concurrent_calls(client: httpx.AsyncClient, uvicorn_url: str) -> None:
    async def call(n: int) -> tuple[int, Any]:
        response = await client.post(f"{uvicorn_url}/echo?n={n}", json={"n": n})
        return n, response.json()

    answers = await asyncio.gather(*(call(n) for n in range(50)))
    for n, seen in answers:
        assert seen["query"] == f"n={n}" and seen["json"] == {"n": n}
    again = {(await client.get(f"{uvicorn_url}/echo")).json()["port"] for _ in range(5)}
    assert again <= {seen["port"] for _, seen in answers}  # from the pool


async def test_reuse_counted_on_the_server(client: httpx.AsyncClient, raw: RawServer) -> None:
    answers = [(await client.get(f"{raw.url}/ok")).json() for _ in range(10)]
    assert raw.accepted == 1
    assert [a["served"] for a in answers] == list(range(1, 11))


async def test_an_idle_connection_the_server_closed_is_not_used(
    client: httpx.AsyncClient, raw: RawServer
) -> None:
    first = await client.get(f"{raw.url}/close-after-answer")
    await asyncio.sleep(0.05)
    second = await client.get(f"{raw.url}/ok")
    assert first.status_code == second.status_code == 200
    assert second.json() == {"connection": 2, "served": 1}


async def test_a_pooled_connection_closed_under_the_call_is_retried_fresh(
    client: httpx.AsyncClient, raw: RawServer
) -> None:
    await client.get(f"{raw.url}/hangup-on-second")
    response = await client.get(f"{raw.url}/hangup-on-second")
    assert response.json() == {"connection": 2, "served": 1}
    assert raw.accepted == 2


async def test_a_post_without_idempotency_key_is_not_resent(
    client: httpx.AsyncClient, raw: RawServer
) -> None:
    await client.post(f"{raw.url}/hangup-on-second", json={})
    with pytest.raises(httpx.RemoteProtocolError):
        await client.post(f"{raw.url}/hangup-on-second", json={})
    keyed = await client.post(
        f"{raw.url}/hangup-on-second", json={}, headers={"Idempotency-Key": "k-1"}
    )
    assert keyed.status_code == 200  # resent on a new connection
    assert raw.accepted == 2


# -- failures ---------------------------------------------------------------------------


async def test_a_dead_port_is_a_connect_error(client: httpx.AsyncClient) -> None:
    url = closed_port_url()
    with pytest.raises(httpx.ConnectError) as refused:
        await client.get(f"{url}/anything")
    assert refused.value.request.url == f"{url}/anything"


async def test_a_dead_port_through_downstream_is_503_downstream_unavailable() -> None:
    client = new_http_client()
    assert isinstance(client._transport, Http1Transport)
    async with client:
        erp = Downstream("erp", closed_port_url(), client, cast(ServiceTokens, None), attempts=2)
        with pytest.raises(ProblemError) as unavailable:
            await erp.request("GET", "/erp/v1/items", bearer="token")
    assert unavailable.value.status == 503
    assert unavailable.value.slug == "downstream-unavailable"
    assert isinstance(unavailable.value.__cause__, httpx.ConnectError)


async def test_downstream_round_trip(uvicorn_url: str) -> None:
    async with new_http_client() as client:
        erp = Downstream("erp", uvicorn_url, client, cast(ServiceTokens, None))
        response = await erp.request("PUT", "/echo", json={"a": 1}, bearer="token")
    assert response.json()["headers"]["authorization"] == "Bearer token"
    assert response.json()["json"] == {"a": 1}


async def _refuse(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("the call went through AsyncClient.request")


async def test_downstream_hands_its_request_straight_to_the_transport(
    uvicorn_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Decision 0053: the same request on the wire as through ``AsyncClient.request``
    (query, JSON body and its type, Idempotency-Key, the token, Host), and the answer an
    ``httpx.Response`` read whole, with its request."""
    async with new_http_client() as client:
        monkeypatch.setattr(client, "request", _refuse)
        erp = Downstream("erp", uvicorn_url, client, cast(ServiceTokens, None))
        response = await erp.request(
            "POST",
            "/echo",
            json={"sku": "SKU-1", "note": "é"},
            params={"a": "1", "b": "x y"},
            idempotency_key="k-1",
            bearer="token",
        )
    assert response.status_code == 200 and response.headers["x-echo"] == "yes"
    assert str(response.request.url) == f"{uvicorn_url}/echo?a=1&b=x+y"
    seen = response.json()
    assert seen["method"] == "POST" and seen["query"] == "a=1&b=x+y"
    assert seen["json"] == {"sku": "SKU-1", "note": "é"}
    headers = seen["headers"]
    assert headers["content-type"] == "application/json"
    assert headers["idempotency-key"] == "k-1"
    assert headers["authorization"] == "Bearer token"
    assert headers["host"] == uvicorn_url.removeprefix("http://")
    assert headers["traceparent"].startswith("00-")


async def test_downstream_straight_to_the_transport_keeps_the_clients_timeout(
    raw: RawServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with new_http_client() as client:
        client.timeout = httpx.Timeout(0.3)
        monkeypatch.setattr(client, "request", _refuse)
        wms = Downstream("wms", raw.url, client, cast(ServiceTokens, None), attempts=1)
        started = asyncio.get_running_loop().time()
        with pytest.raises(ProblemError) as unavailable:
            await wms.request("GET", "/never", bearer="token")
        assert asyncio.get_running_loop().time() - started < 2.0
    assert unavailable.value.status == 503
    assert isinstance(unavailable.value.__cause__, httpx.ReadTimeout)


def test_the_escape_hatch_gives_httpx_own_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CLIENT_ENV, "httpx")
    assert isinstance(new_http_client()._transport, httpx.AsyncHTTPTransport)
    monkeypatch.setenv(CLIENT_ENV, "http1")
    assert isinstance(new_http_client()._transport, Http1Transport)
    monkeypatch.setenv(CLIENT_ENV, "nonsense")
    with pytest.raises(ValueError, match=CLIENT_ENV):
        new_http_client()


async def test_a_server_that_never_answers_is_a_read_timeout(raw: RawServer) -> None:
    async with httpx.AsyncClient(transport=Http1Transport(), timeout=0.3) as client:
        started = asyncio.get_running_loop().time()
        with pytest.raises(httpx.ReadTimeout):
            await client.get(f"{raw.url}/never")
        assert asyncio.get_running_loop().time() - started < 2.0
        assert (await client.get(f"{raw.url}/ok")).json()["connection"] == 2


async def test_an_answer_that_breaks_off_is_a_transport_error_and_not_pooled(
    client: httpx.AsyncClient, raw: RawServer
) -> None:
    with pytest.raises(httpx.RemoteProtocolError) as broken:
        await client.get(f"{raw.url}/partial")
    assert isinstance(broken.value, httpx.TransportError)
    response = await client.get(f"{raw.url}/ok")
    assert response.json() == {"connection": 2, "served": 1}


async def test_a_cancelled_call_closes_its_connection(
    client: httpx.AsyncClient, raw: RawServer
) -> None:
    await client.get(f"{raw.url}/ok")  # connection 1, pooled
    call = asyncio.create_task(client.get(f"{raw.url}/never"))  # on connection 1
    await asyncio.sleep(0.1)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    # Were connection 1 pooled again, this would wait on the server's /never forever.
    response = await client.get(f"{raw.url}/ok", timeout=2.0)
    assert response.json() == {"connection": 2, "served": 1}
