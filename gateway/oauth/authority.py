"""The gateway's authorization server as one part for ``gateway/app.py``: client
registry, signing keys, token store, Authlib server, the verifiers the router uses,
the OAuth routes, and a lifespan that keeps this replica current (revocations from
the store every second, a key file replaced by ``tally keys rotate``, pruning)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio

from gateway.clients.registry import ClientRegistry
from gateway.oauth.keys import KeyStore, LocalKeySource
from gateway.oauth.routes import oauth_routes
from gateway.oauth.server import TallyAuthorizationServer
from gateway.oauth.token_store import TokenStore
from shared.auth.revocation import (
    POLL_SECONDS,
    RevocationList,
    RevocationPage,
    RevocationPoller,
    RevokedToken,
)
from shared.auth.verifier import TokenVerifier
from shared.settings import Settings

log = logging.getLogger("tally.gateway.oauth")

PRUNE_EVERY_TICKS = 60


class Authority:
    def __init__(self, settings: Settings) -> None:
        self.issuer = settings.issuer
        self.registry = ClientRegistry(settings.database_url)
        self.keys = KeyStore.in_data_dir(settings.data_dir)
        self.store = TokenStore(self.registry.engine)
        self.revocations = RevocationList()
        self.server = TallyAuthorizationServer(
            self.registry, settings.issuer, self.keys, self.store, revocations=self.revocations
        )
        self.key_source = LocalKeySource(self.keys)
        self.poller = RevocationPoller(self.revocations, self._fetch, interval=POLL_SECONDS)

    def verifier(self, audience: str) -> TokenVerifier:
        return TokenVerifier(
            self.key_source, issuer=self.issuer, audience=audience, revocations=self.revocations
        )

    def routes(self) -> list[Any]:
        return oauth_routes(self.server, self.keys, self.issuer)

    async def _fetch(self, _store_id: str | None, cursor: int) -> RevocationPage:
        page = await anyio.to_thread.run_sync(self.store.revocations_after, cursor)
        items = [RevokedToken(jti=jti, exp=exp) for _, jti, exp in page.items]
        return RevocationPage(page.store_id, items, page.cursor, page.has_more)

    async def _maintain(self, stop: asyncio.Event) -> None:
        tick = 0
        while not stop.is_set():
            tick += 1
            try:
                await self.poller.poll_once()
                self.keys.reload_if_changed()
                if tick % PRUNE_EVERY_TICKS == 0:
                    await anyio.to_thread.run_sync(self.store.prune)
            except Exception:  # keep going: the next tick retries
                log.exception("token store upkeep failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=POLL_SECONDS)

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Any) -> AsyncIterator[None]:
        await self.poller.poll_once()  # know every live revocation before serving
        stop = asyncio.Event()
        task = asyncio.create_task(self._maintain(stop))
        try:
            yield
        finally:
            stop.set()
            await task
