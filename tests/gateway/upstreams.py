"""A tiny service for the gateway to forward to: echoes what it received, streams on
demand, and records every call, so a test can tell what crossed the gateway."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from typing import Any

import anyio
from litestar import Litestar, Request, Response, get, route
from litestar.datastructures import Cookie
from litestar.response import Stream


class Upstream:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.release = threading.Event()
        self.app = Litestar(route_handlers=self._routes(), debug=False)

    def _routes(self) -> list[Any]:
        calls = self.calls
        release = self.release

        @route(
            ["/erp/v1/{rest:path}", "/orders/v1/{rest:path}", "/graphql"],
            http_method=["GET", "POST", "PUT", "PATCH", "DELETE"],
        )
        async def echo(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
            body = await request.body()
            seen = {
                "method": request.method,
                "path": request.scope["path"],
                "raw_path": request.scope["raw_path"].decode(),
                "query": request.scope["query_string"].decode(),
                "headers": [(k.decode(), v.decode()) for k, v in request.scope["headers"]],
                "body": body.decode(),
            }
            calls.append(seen)
            return Response(
                seen,
                status_code=201 if request.method == "POST" else 200,
                headers={"X-Upstream": "yes"},
                cookies=[Cookie(key="a", value="1"), Cookie(key="b", value="2")],
            )

        @get("/wms/v1/stream")
        async def stream() -> Stream:
            async def chunks() -> AsyncIterator[bytes]:
                yield b"first\n"
                # Only a gateway that streams lets the caller see "first" before this ends.
                released = await anyio.to_thread.run_sync(release.wait, 10)
                yield b"second\n" if released else b"never-released\n"

            return Stream(chunks(), media_type="text/plain")

        @get("/wms/v1/slow")
        async def slow() -> str:
            await anyio.sleep(3)
            return "late"

        return [echo, stream, slow]
