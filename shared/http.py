"""Calls to other services: one shared httpx.AsyncClient per service, timeouts, the
service's own token, correlation headers, a circuit breaker per downstream, and retries
with exponential backoff and jitter on idempotent calls (GET, or any call carrying an
Idempotency-Key).

The clients keep httpx's API, but their wire work is done by ``Http1Transport``
(``shared/http_transport.py``: the gateway's keep-alive HTTP/1.1 client on asyncio
protocols and httptools), which costs a fraction of httpcore/anyio's CPU per call.
A ``Downstream`` whose client ``new_http_client()`` made hands its ``httpx.Request``
straight to that transport: ``AsyncClient.send``'s auth flow, redirect loop, cookie jar
and header merging cost more of a call's CPU than the transport's wire work, and none
of them applies to a call between services (decision 0053).

Escape hatch: ``TALLY_HTTP_CLIENT=httpx`` in the environment (read each time a client is
made, so at start-up) gives httpx's own httpcore-based transport instead;
``TALLY_HTTP_CLIENT=http1`` (or unset) the default.
"""

from __future__ import annotations

import math
import os
from typing import Any
from weakref import WeakKeyDictionary

import httpx
import msgspec
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from shared.auth.service_tokens import ServiceTokens
from shared.breaker import CircuitBreaker, CircuitOpen
from shared.correlation import outgoing_headers
from shared.http_transport import Http1Transport
from shared.problems import ProblemError

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=2.0)
CLIENT_ENV = "TALLY_HTTP_CLIENT"
# The clients new_http_client() made on Http1Transport, and that transport.
_DIRECT: WeakKeyDictionary[httpx.AsyncClient, Http1Transport] = WeakKeyDictionary()


class RetryableStatus(Exception):
    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"{response.request.url} answered {response.status_code}")
        self.response = response


def new_http_client() -> httpx.AsyncClient:
    """A client for one downstream (or the runtime's own calls): ``Http1Transport``,
    or httpx's own transport with ``TALLY_HTTP_CLIENT=httpx``."""
    choice = os.environ.get(CLIENT_ENV, "").strip().lower() or "http1"
    if choice == "httpx":
        return httpx.AsyncClient(
            timeout=DEFAULT_TIMEOUT,
            # Keep as many connections alive as may be open: a burst of concurrent calls
            # otherwise closes most of them after use and opens new ones for the next.
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=100),
        )
    if choice != "http1":
        raise ValueError(f"{CLIENT_ENV}={choice!r}: expected 'http1' or 'httpx'")
    transport = Http1Transport(max_connections=100, max_idle=100)
    client = httpx.AsyncClient(transport=transport, timeout=DEFAULT_TIMEOUT)
    _DIRECT[client] = transport
    return client


class Downstream:
    """A base URL plus the shared client, the service's token and, when given, the
    downstream's circuit breaker (decision 0025)."""

    def __init__(
        self,
        name: str,
        base_url: str,
        client: httpx.AsyncClient,
        tokens: ServiceTokens,
        *,
        attempts: int = 4,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.client = client
        self.tokens = tokens
        self.attempts = attempts
        self.breaker = breaker
        self._direct = _DIRECT.get(client)

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Any = None,
        idempotency_key: str | None = None,
        bearer: str | None = None,
    ) -> httpx.Response:
        retryable = method.upper() in ("GET", "HEAD", "PUT", "DELETE") or bool(idempotency_key)
        attempts = self.attempts if retryable else 1
        call: dict[str, Any] = {"params": params, "key": idempotency_key, "bearer": bearer}
        if json is not None:
            # msgspec: the same JSON as httpx's ``json=`` (UTF-8, not \u escapes), at a
            # fraction of the stdlib encoder's cost.
            call["content"] = msgspec.json.encode(json)
            call["content_type"] = "application/json"
        try:
            # The first attempt outside tenacity: most calls succeed at once, and its
            # set-up per call was a tenth of a call's client-side cost.
            first: Exception | None = None
            try:
                return await self._answer(method, path, call)
            except (httpx.TransportError, RetryableStatus) as error:
                if attempts == 1:
                    raise
                first = error
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(attempts),
                wait=wait_exponential_jitter(multiplier=0.05, max=2.0),
                retry=retry_if_exception_type((httpx.TransportError, RetryableStatus)),
                reraise=True,
            ):
                with attempt:
                    if first is not None:  # tenacity's attempt 1 is the one made above
                        made, first = first, None
                        raise made
                    return await self._answer(method, path, call)
        except CircuitOpen as exc:
            raise self._unavailable(max(1, math.ceil(exc.retry_after))) from exc
        except (httpx.TransportError, RetryableStatus) as exc:
            raise self._unavailable(2) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def _answer(self, method: str, path: str, call: dict[str, Any]) -> httpx.Response:
        response = await self._send(method, path, **call)
        if response.status_code in (502, 503, 504) or _in_progress(response):
            raise RetryableStatus(response)
        return response

    async def _send(
        self,
        method: str,
        path: str,
        *,
        key: str | None,
        bearer: str | None,
        content_type: str | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """One network call, counted by the breaker (admitted before anything goes out,
        the token included): a transport error (timeouts included) or 502/503/504 is a
        failure, any other answer a success, the 503 of a transaction that lost a lock
        conflict included (the service is up; the call is retried like any 503)."""
        breaker = self.breaker
        if breaker is not None:
            await breaker.admitted()
        try:
            headers = _headers(key, content_type)
            own = bearer is None
            token = bearer or await self.tokens.bearer()
            headers["Authorization"] = f"Bearer {token}"
            response = await self._call(method, path, headers, kwargs)
            if own and response.status_code == 401:  # our token, refused: once with a new one
                self.tokens.forget(token)
                headers["Authorization"] = f"Bearer {await self.tokens.bearer()}"
                response = await self._call(method, path, headers, kwargs)
        except httpx.TransportError:
            if breaker is not None:
                breaker.failed()
            raise
        except BaseException:
            if breaker is not None:
                breaker.abandoned()
            raise
        if breaker is not None:
            if response.status_code in (502, 503, 504) and not _lost_a_conflict(response):
                breaker.failed()
            else:
                breaker.succeeded()
        return response

    async def _call(
        self, method: str, path: str, headers: dict[str, str], kwargs: dict[str, Any]
    ) -> httpx.Response:
        if self._direct is None:  # a client of the caller's own (tests, TALLY_HTTP_CLIENT)
            return await self.client.request(
                method, self.base_url + path, headers=headers, **kwargs
            )
        request = httpx.Request(
            method,
            self.base_url + path,
            params=kwargs.get("params"),
            headers=headers,
            content=kwargs.get("content"),
            extensions={"timeout": self.client.timeout.as_dict()},  # the client's, as httpx
        )
        response = await self._direct.handle_async_request(request)
        await response.aread()  # the transport read it whole: no I/O here
        return response

    def _unavailable(self, retry_after: int) -> ProblemError:
        return ProblemError(
            503,
            "downstream-unavailable",
            f"The {self.name} service is not reachable right now; retry later.",
            headers={"Retry-After": str(retry_after)},
        )


def _headers(key: str | None, content_type: str | None) -> dict[str, str]:
    headers = outgoing_headers()
    if content_type:
        headers["Content-Type"] = content_type
    if key:
        headers["Idempotency-Key"] = key
    return headers


def _in_progress(response: httpx.Response) -> bool:
    """A 409 ``request-in-progress``: the same key is still running there; retry."""
    return (
        response.status_code == 409
        and response.headers.get("content-type", "").startswith("application/problem+json")
        and response.json().get("type") == "/problems/request-in-progress"
    )


def _lost_a_conflict(response: httpx.Response) -> bool:
    """A 503 ``/problems/transaction-conflict``: the service answered that its database
    chose this request as a deadlock victim (``shared.problems.conflict_refusal``)."""
    return (
        response.status_code == 503
        and response.headers.get("content-type", "").startswith("application/problem+json")
        and b'"/problems/transaction-conflict"' in response.content
    )
