"""Tokens for calls between services: the service's own client credentials, cached
until shortly before they expire."""

from __future__ import annotations

import asyncio
import time

import httpx


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

    async def bearer(self) -> str:
        if self._token and time.monotonic() < self._expires - 60:
            return self._token
        async with self._lock:
            if self._token and time.monotonic() < self._expires - 60:
                return self._token
            if not self.client_id or not self.secret:
                raise RuntimeError("this service has no client credentials configured")
            response = await self.client.post(
                self.token_url,
                data={"grant_type": "client_credentials"},
                auth=(self.client_id, self.secret),
                timeout=10.0,
            )
            response.raise_for_status()
            body = response.json()
            self._token = str(body["access_token"])
            self._expires = time.monotonic() + float(body.get("expires_in", 300))
            return self._token
