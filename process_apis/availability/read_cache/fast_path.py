"""``GET /availability/v2/items/{sku}`` and ``GET /availability/v2/items?sku=..``
answered from the cache without the framework's per-request layers (decision 0039,
as decision 0019 did for allocations).

It takes only a request it can answer entirely from memory: no query other than
``sku`` (so no ``channel``), every sku well-formed and cached, a valid token with
``inventory:read``. It does what the middleware stack does on that path (correlation
id, token and scope, the request metric) and writes the cached v2 bodies. Anything
else, a miss included, goes to Litestar untouched; the route then reads the database
and fills the cache."""

from __future__ import annotations

import re
import time
from urllib.parse import unquote

from litestar.types import ASGIApp, HTTPResponseStartEvent, Receive, Scope, Send

from process_apis.availability import clock
from process_apis.availability.read_cache.reader import ItemReader
from shared.auth.litestar_auth import authorize
from shared.auth.verifier import TokenVerifier
from shared.correlation import accept_correlation_id, correlation_id, traceparent
from shared.observability import REQUEST_SECONDS

ONE = "/availability/v2/items/"
MANY = "/availability/v2/items"
SCOPE = "inventory:read"
MAX_BATCH = 100
_SKU = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,63}$")  # shared.models.Sku


def _one(path: str) -> list[str] | None:
    sku = path[len(ONE) :]
    return [sku] if _SKU.match(sku) else None


def _many(query: bytes) -> list[str] | None:
    skus = []
    for part in query.split(b"&"):
        if not part.startswith(b"sku="):
            return None
        sku = unquote(part[4:].decode("latin-1"))
        if not _SKU.match(sku):
            return None
        skus.append(sku)
    return skus if 0 < len(skus) <= MAX_BATCH else None


class ReadFastPath:
    def __init__(self, app: ASGIApp, verifier: TokenVerifier, reader: ItemReader, service: str):
        self.app = app
        self.verifier = verifier
        self.reader = reader
        self.service = service
        self._ok = {
            ONE: REQUEST_SECONDS.labels(service, "GET", "/availability/v2/items/{sku:str}", "200"),
            MANY: REQUEST_SECONDS.labels(service, "GET", "/availability/v2/items", "200"),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""  # type: ignore[comparison-overlap]
        skus: list[str] | None = None
        if scope.get("method") == "GET":
            if path.startswith(ONE) and not scope["query_string"]:
                skus, route = _one(path), ONE
            elif path == MANY and scope["query_string"]:
                skus, route = _many(scope["query_string"]), MANY
        if skus is None or self.reader.cache is None:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        entries = self.reader.cached(
            skus if route == ONE else list(dict.fromkeys(skus)), clock.now()
        )
        if entries is None or not await self._allowed(scope):
            await self.app(scope, receive, send)
            return
        raw_cid = raw_tp = None
        for name, value in scope["headers"]:
            if name == b"x-correlation-id":
                raw_cid = value
            elif name == b"traceparent":
                raw_tp = value
        cid = accept_correlation_id(raw_cid.decode("latin-1") if raw_cid else None)
        correlation_id.set(cid)
        traceparent.set(raw_tp.decode("latin-1") if raw_tp else None)
        if route == ONE:
            body = entries[0].body
        else:
            body = b'{"items":[' + b",".join(e.body for e in entries) + b"]}"
        start: HTTPResponseStartEvent = {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode("latin-1")),
                (b"x-correlation-id", cid.encode("latin-1")),
            ],
        }
        await send(start)
        await send({"type": "http.response.body", "body": body, "more_body": False})
        self._ok[route].observe(time.perf_counter() - started)

    async def _allowed(self, scope: Scope) -> bool:
        auth = next((v for k, v in scope["headers"] if k == b"authorization"), None)
        if auth is None or auth[:7].lower() != b"bearer ":
            return False
        token = auth[7:].strip()
        if not token:
            return False
        try:
            authorize(await self.verifier.verify(token.decode("latin-1")), SCOPE)
        except Exception:  # any refusal is the framework's to write, as it writes it
            return False
        return True
