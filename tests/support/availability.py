"""The availability service as a real process (``tally serve availability``: uvicorn
with uvloop and httptools, as a container runs it) for the contention test and the
allocation benchmark.

Its tokens come from a ``TestIssuer``: the process fetches the issuer's JWKS over HTTP
from a tiny server in this process, exactly as it fetches the gateway's. Stock arrives
as ``receipt.posted`` events on the embedded log of its data directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import msgspec

from shared.settings import Settings, load_settings
from tests.availability.helpers import publish
from tests.support.events import receipt_posted
from tests.support.polling import Exited, wait_until, wait_until_answers
from tests.support.ports import free_port
from tests.support.stack import ThreadServer
from tests.support.tls import TLS
from tests.support.tokens import TestIssuer


def jwks_app(jwks: dict[str, Any]) -> Any:
    """An ASGI app answering every GET with the key set (``/healthz`` included)."""
    body = json.dumps(jwks).encode()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app


class AvailabilityProcess:
    """``with AvailabilityProcess(tmp, issuer) as service: service.url``."""

    def __init__(
        self,
        data_dir: Path,
        issuer: TestIssuer,
        *,
        database_url: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.issuer = issuer
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.settings: Settings = load_settings("availability", data_dir=self.data_dir)
        if database_url:
            self.settings = msgspec.structs.replace(self.settings, database_url=database_url)
        self.extra_env = env or {}
        self.jwks = ThreadServer(jwks_app({"keys": [issuer.key.as_dict(private=False)]}))
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.data_dir / "availability.log"

    def start(self, timeout: float = 30.0) -> AvailabilityProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        jwks_url = self.jwks.start()
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("TALLY_") or key == "TALLY_REQUIRE_SERVERS"
        }
        env |= {
            "TALLY_DATA_DIR": str(self.data_dir),
            "TALLY_AVAILABILITY_PORT": str(self.port),
            "TALLY_AVAILABILITY_DATABASE_URL": self.settings.database_url,
            "TALLY_ISSUER": self.issuer.issuer,
            "TALLY_JWKS_URL": jwks_url,
            **self.extra_env,
        }
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tally", "serve", "availability"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        process = self.process
        try:
            wait_until_answers(
                f"{self.url}/readyz",
                alive=lambda: process.poll() is None,
                timeout=timeout,
                interval=0.1,
            )
        except Exited:
            self.stop()
            raise RuntimeError(f"availability exited at start:\n{self.log_tail()}") from None
        except TimeoutError:
            self.stop()
            raise TimeoutError(f"availability did not get ready:\n{self.log_tail()}") from None
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.jwks.stop()

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> AvailabilityProcess:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def token(self, scopes: str = "inventory:read inventory:write", **claims: Any) -> str:
        return self.issuer.token(scopes, audience="availability", expires_in=3600, **claims)

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self.token()}"},
            timeout=60.0,
            verify=TLS,
            **kwargs,
        )

    def receive(self, warehouse_id: str, sku: str, quantity: int) -> None:
        """A WMS receipt of ``quantity`` of ``sku`` at ``warehouse_id`` (on the bus)."""
        publish(self.settings, receipt_posted(warehouse_id, [(sku, quantity, None)]))

    def wait_for_atp(self, sku: str, atp: int, timeout: float = 20.0) -> None:
        seen: list[int] = []

        def reached() -> bool:
            seen.append(http.get(f"/availability/v1/items/{sku}").json()["available_to_promise"])
            return seen[-1] == atp

        with self.client() as http:
            try:
                wait_until(reached, timeout=timeout)
            except TimeoutError:
                raise TimeoutError(f"ATP of {sku} is {seen[-1]}, not {atp}") from None
