"""Revoked access tokens, as every verifier (the gateway and each service) knows them.

The gateway keeps each revoked jti with its token's ``exp`` in its store and serves
them, numbered, at ``GET /oauth/revocations?after=N``. Every verifier polls that list
about once a second and keeps it in memory (a dict jti -> exp), so the check on the
hot path is one dict lookup, also for tokens served from the verified-token cache.
Entries are dropped once their token has expired: the list stays as small as the
number of revoked tokens of the last token lifetime. See docs/decisions/0011.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

import httpx
import msgspec

log = logging.getLogger("tally.auth.revocation")

REVOCATIONS_PATH = "/oauth/revocations"
POLL_SECONDS = 1.0


class RevokedToken(msgspec.Struct, frozen=True):
    jti: str
    exp: int


class RevocationPage(msgspec.Struct, frozen=True):
    """One answer of ``GET /oauth/revocations``: the revocations numbered above the
    caller's cursor, the cursor to send next, and the id of the gateway's store (a
    different id means the store was reset: start again from zero)."""

    store_id: str
    items: list[RevokedToken]
    cursor: int
    has_more: bool = False


class RevocationList:
    def __init__(self) -> None:
        self._revoked: dict[str, int] = {}
        self.store_id: str | None = None
        self.cursor = 0
        self.synced_at: float | None = None  # monotonic time of the last successful poll

    def is_revoked(self, jti: str | None) -> bool:
        return jti is not None and jti in self._revoked

    def add(self, jti: str, exp: int) -> None:
        self._revoked[jti] = exp

    def apply(self, page: RevocationPage) -> None:
        if page.store_id != self.store_id:
            if self.store_id is not None:
                log.warning(
                    "revocation store changed (%s); reading it from the start", page.store_id
                )
            self.store_id = page.store_id
        for item in page.items:
            self._revoked[item.jti] = item.exp
        self.cursor = page.cursor

    def prune(self, leeway: int = 120) -> None:
        cutoff = time.time() - leeway
        expired = [jti for jti, exp in self._revoked.items() if exp < cutoff]
        for jti in expired:
            del self._revoked[jti]

    def __len__(self) -> int:
        return len(self._revoked)


Fetch = Callable[[str | None, int], Awaitable[RevocationPage]]


class RevocationPoller:
    """Keeps a :class:`RevocationList` in step with the gateway's store. ``fetch(
    store_id, cursor)`` returns the next page; a failed fetch is logged and retried on
    the next tick (the list keeps what it had: fail-open, see decision 0011)."""

    def __init__(
        self, revocations: RevocationList, fetch: Fetch, interval: float = POLL_SECONDS
    ) -> None:
        self.revocations = revocations
        self.fetch = fetch
        self.interval = interval
        self._failing_since: float | None = None

    async def poll_once(self) -> None:
        rl = self.revocations
        while True:
            cursor = rl.cursor
            page = await self.fetch(rl.store_id, cursor)
            if page.store_id != rl.store_id and cursor:
                rl.cursor = 0  # a reset store: its numbers start again
                rl.store_id = page.store_id
                continue
            rl.apply(page)
            if not page.has_more:
                break
        rl.synced_at = time.monotonic()
        rl.prune()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.poll_once()
                if self._failing_since is not None:
                    log.info("revocation list reachable again")
                    self._failing_since = None
            except Exception as exc:
                if self._failing_since is None:
                    self._failing_since = time.monotonic()
                    log.warning("revocation list not reachable: %r; keeping what is known", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.interval)


def http_fetch(client: httpx.AsyncClient, url: str) -> Fetch:
    """Fetches pages from the gateway's ``GET /oauth/revocations``."""
    decoder = msgspec.json.Decoder(RevocationPage)

    async def fetch(_store_id: str | None, cursor: int) -> RevocationPage:
        response = await client.get(url, params={"after": cursor}, timeout=5.0)
        response.raise_for_status()
        return decoder.decode(response.content)

    return fetch
