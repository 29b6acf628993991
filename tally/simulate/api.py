"""A party's session with the platform: its own OAuth client's token (client
credentials, fetched again when it expires or is refused), every call through the
gateway, and retries a real client makes: 429 after Retry-After, 502/503/504 and lost
connections with the same Idempotency-Key, so a retry never does a thing twice."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec

RETRIED = {429, 502, 503, 504}
MAX_ATTEMPTS = 40
# How long a party keeps trying to reach the gateway before it gives up on the day.
UNREACHABLE_SECONDS = 180.0


@dataclass(frozen=True)
class Credentials:
    client_id: str
    client_secret: str
    scope: str | None = None


class GraphQLErrors(RuntimeError):
    """A GraphQL answer with errors (not the mutations' typed UserErrors)."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(f"graphql errors: {errors}")
        self.codes = {str((e.get("extensions") or {}).get("code")) for e in errors}


# The day's hundreds of thousands of bodies, coded by msgspec: the standard library's
# json was a sixth of the simulator's CPU, on the cores the platform runs on.
_JSON_OUT = msgspec.json.Encoder().encode
_JSON_IN = msgspec.json.Decoder().decode
_JSON_SENT = {"Content-Type": "application/json"}


def json_of(answer: httpx.Response) -> Any:
    """``answer.json()``, decoded faster (the gateway answers UTF-8)."""
    return _JSON_IN(answer.content)


@dataclass
class Party:
    """One OAuth client's calls. ``retries`` counts the calls made again."""

    gateway: str
    credentials: Credentials
    http: httpx.AsyncClient
    retries: int = 0
    _token: str | None = None
    _expires: float = 0.0
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def token(self, renew: bool = False) -> str:
        async with self._lock:
            if renew or self._token is None or time.monotonic() > self._expires:
                form = {"grant_type": "client_credentials"}
                if self.credentials.scope:
                    form["scope"] = self.credentials.scope
                answer = await self._send(
                    "POST",
                    f"{self.gateway}/oauth/token",
                    data=form,
                    auth=(self.credentials.client_id, self.credentials.client_secret),
                )
                answer.raise_for_status()
                body = answer.json()
                self._token = str(body["access_token"])
                self._expires = time.monotonic() + int(body.get("expires_in", 300)) - 30
            return self._token

    async def call(
        self, method: str, path: str, *, key: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        """The answer once it is not a retryable one (or the attempts are spent)."""
        headers = dict(kwargs.pop("headers", {}))
        if key is not None:
            headers["Idempotency-Key"] = key
        renewed = False
        for attempt in range(MAX_ATTEMPTS):
            headers["Authorization"] = f"Bearer {await self.token()}"
            answer = await self._send(method, f"{self.gateway}{path}", headers=headers, **kwargs)
            if answer.status_code == 401 and not renewed:
                renewed = True
                await self.token(renew=True)
                continue
            if answer.status_code not in RETRIED:
                return answer
            self.retries += 1
            await asyncio.sleep(_backoff(answer, attempt))
        return answer

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.call("GET", path, **kwargs)

    async def post(self, path: str, body: Any = None, *, key: str | None = None) -> httpx.Response:
        if body is None:  # as httpx's json=None: no body
            return await self.call("POST", path, key=key)
        return await self.call("POST", path, key=key, content=_JSON_OUT(body), headers=_JSON_SENT)

    async def graphql(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        answer = await self.post("/graphql", {"query": query, "variables": variables})
        answer.raise_for_status()
        body: dict[str, Any] = json_of(answer)
        if body.get("errors"):
            raise GraphQLErrors(body["errors"])
        return dict(body["data"])

    async def pages(self, path: str, params: dict[str, Any] | None = None) -> list[Any]:
        """Every item of a cursor-paged list."""
        return (await self.pages_from(path, params, None))[0]

    async def pages_from(
        self, path: str, params: dict[str, Any] | None, cursor: str | None
    ) -> tuple[list[Any], str | None]:
        """The items of a cursor-paged list from ``cursor`` on, and the cursor to read
        on from next time: that of the last page, which is read again (it may grow)."""
        found: list[Any] = []
        query = {"limit": 500} | dict(params or {})
        while True:
            if cursor is not None:
                query["cursor"] = cursor
            answer = await self.get(path, params=query)
            answer.raise_for_status()
            body = json_of(answer)
            found += body["items"]
            if not body.get("next_cursor"):
                return found, cursor
            cursor = body["next_cursor"]

    async def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """The gateway's answer; connection failures (a gateway restarting under
        --chaos) are retried for up to ``UNREACHABLE_SECONDS``."""
        gives_up = time.monotonic() + UNREACHABLE_SECONDS
        attempt = 0
        while True:
            try:
                return await self.http.request(method, url, **kwargs)
            except (httpx.TransportError, httpx.TimeoutException):
                if time.monotonic() >= gives_up:
                    raise
                self.retries += 1  # a service restarting (--chaos): the same call again
                await asyncio.sleep(min(2.0, 0.05 * 2.0**attempt))
                attempt += 1


def _backoff(answer: httpx.Response, attempt: int) -> float:
    after = answer.headers.get("retry-after")
    if after is not None:
        try:
            seconds: float = min(5.0, max(0.05, float(after)))
            return seconds
        except ValueError:
            pass
    return min(2.0, 0.05 * 2.0**attempt)
