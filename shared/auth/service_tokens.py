"""Tokens for calls between services: the service's own client credentials, cached
until shortly before they expire."""

from __future__ import annotations

import asyncio
import time

import httpx

from shared.problems import ProblemError


def _no_token(detail: str) -> ProblemError:
    """The caller's request cannot go on; it is the platform's fault, not the caller's."""
    return ProblemError(503, "downstream-unavailable", detail, headers={"Retry-After": "5"})


class ServiceTokens:
    def __init__(
        self, client: httpx.AsyncClient, token_url: str, client_id: str | None, secret: str | None
    ) -> None:
        self.client = client
        self.token_url = token_url
        self.client_id = client_id
        self.secret = secret
        self._token: str | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()

    def forget(self, token: str) -> None:
        """Drops ``token`` (a downstream refused it: revoked, or signed with a key it no
        longer trusts), so the next call asks the gateway for a new one."""
        if self._token == token:
            self._token = None

    async def bearer(self) -> str:
        if self._token and time.monotonic() < self._expires - 60:
            return self._token
        async with self._lock:
            if self._token and time.monotonic() < self._expires - 60:
                return self._token
            if not self.client_id or not self.secret:
                raise _no_token("This service has no client credentials to call others.")
            response = await self.client.post(
                self.token_url,
                data={"grant_type": "client_credentials"},
                auth=(self.client_id, self.secret),
                timeout=10.0,
            )
            if response.status_code != 200:
                raise _no_token(
                    f"The gateway refused this service a token ({response.status_code})."
                )
            body = response.json()
            self._token = str(body["access_token"])
            self._expires = time.monotonic() + float(body.get("expires_in", 300))
            return self._token
