"""Calls to other services: one shared httpx.AsyncClient per service, timeouts, the
service's own token, correlation headers, and retries with exponential backoff and
jitter on idempotent calls (GET, or any call carrying an Idempotency-Key)."""

from __future__ import annotations

from typing import Any

import httpx
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from shared.auth.service_tokens import ServiceTokens
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
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
    )


class Downstream:
    """A base URL plus the shared client and the service's token."""

    def __init__(
        self,
        name: str,
        base_url: str,
        client: httpx.AsyncClient,
        tokens: ServiceTokens,
        *,
        attempts: int = 4,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.client = client
        self.tokens = tokens
        self.attempts = attempts

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
                    headers = outgoing_headers()
                    headers["Authorization"] = f"Bearer {bearer or await self.tokens.bearer()}"
                    if idempotency_key:
                        headers["Idempotency-Key"] = idempotency_key
                    response = await self.client.request(
                        method, self.base_url + path, json=json, params=params, headers=headers
                    )
                    if response.status_code in (502, 503, 504) or (
                        response.status_code == 409
                        and response.headers.get("content-type", "").startswith(
                            "application/problem+json"
                        )
                        and response.json().get("type") == "/problems/request-in-progress"
                    ):
                        raise RetryableStatus(response)
                    return response
        except (httpx.TransportError, RetryableStatus) as exc:
            raise ProblemError(
                503,
                "downstream-unavailable",
                f"The {self.name} service is not reachable right now; retry later.",
                headers={"Retry-After": "2"},
            ) from exc
        raise AssertionError("unreachable")  # pragma: no cover
