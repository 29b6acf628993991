"""Calls to other services: one shared httpx.AsyncClient per service, timeouts, the
service's own token, correlation headers, a circuit breaker per downstream, and retries
with exponential backoff and jitter on idempotent calls (GET, or any call carrying an
Idempotency-Key)."""

from __future__ import annotations

import math
from typing import Any

import httpx
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from shared.auth.service_tokens import ServiceTokens
from shared.breaker import CircuitBreaker, CircuitOpen
from shared.correlation import outgoing_headers
from shared.problems import ProblemError

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=2.0)


class RetryableStatus(Exception):
    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"{response.request.url} answered {response.status_code}")
        self.response = response


def new_http_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=DEFAULT_TIMEOUT,
        # Keep as many connections alive as may be open: a burst of concurrent calls
        # otherwise closes most of them after use and opens new ones for the next.
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=100),
    )


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
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(attempts),
                wait=wait_exponential_jitter(multiplier=0.05, max=2.0),
                retry=retry_if_exception_type((httpx.TransportError, RetryableStatus)),
                reraise=True,
            ):
                with attempt:
                    response = await self._send(
                        method, path, json=json, params=params, key=idempotency_key, bearer=bearer
                    )
                    if response.status_code in (502, 503, 504) or _in_progress(response):
                        raise RetryableStatus(response)
                    return response
        except CircuitOpen as exc:
            raise self._unavailable(max(1, math.ceil(exc.retry_after))) from exc
        except (httpx.TransportError, RetryableStatus) as exc:
            raise self._unavailable(2) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send(
        self, method: str, path: str, *, key: str | None, bearer: str | None, **kwargs: Any
    ) -> httpx.Response:
        """One network call, counted by the breaker (admitted before anything goes out,
        the token included): a transport error (timeouts included) or 502/503/504 is a
        failure, any other answer a success."""
        breaker = self.breaker
        if breaker is not None:
            breaker.admit()
        try:
            headers = outgoing_headers()
            headers["Authorization"] = f"Bearer {bearer or await self.tokens.bearer()}"
            if key:
                headers["Idempotency-Key"] = key
            response = await self.client.request(
                method, self.base_url + path, headers=headers, **kwargs
            )
        except httpx.TransportError:
            if breaker is not None:
                breaker.failed()
            raise
        except BaseException:
            if breaker is not None:
                breaker.abandoned()
            raise
        if breaker is not None:
            if response.status_code in (502, 503, 504):
                breaker.failed()
            else:
                breaker.succeeded()
        return response

    def _unavailable(self, retry_after: int) -> ProblemError:
        return ProblemError(
            503,
            "downstream-unavailable",
            f"The {self.name} service is not reachable right now; retry later.",
            headers={"Retry-After": str(retry_after)},
        )


def _in_progress(response: httpx.Response) -> bool:
    """A 409 ``request-in-progress``: the same key is still running there; retry."""
    return (
        response.status_code == 409
        and response.headers.get("content-type", "").startswith("application/problem+json")
        and response.json().get("type") == "/problems/request-in-progress"
    )
