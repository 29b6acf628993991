"""Bring the whole platform up: credentials, processes, readiness, demo data.

`tally up` and the end-to-end tests call the same function.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tally.bootstrap import ensure_clients, service_credentials_env
from tally.seed import seed, token
from tally.supervisor import Platform


class Launched:
    def __init__(self, platform: Platform, clients: dict[str, Any], seconds: float) -> None:
        self.platform = platform
        self.clients = clients
        self.seconds = seconds


def launch(
    data_dir: Path,
    *,
    ports: dict[str, int] | None = None,
    extra_env: dict[str, str] | None = None,
    seed_demo: bool = True,
    progress: Callable[[str], None] = lambda _: None,
) -> Launched:
    started = time.monotonic()
    data_dir.mkdir(parents=True, exist_ok=True)
    clients = ensure_clients(data_dir)
    env = service_credentials_env(clients) | (extra_env or {})
    platform = Platform(data_dir, extra_env=env)
    if ports:
        platform.ports.update(ports)
    platform.start()
    try:
        platform.wait_ready(on_ready=lambda name: progress(f"{name} ready"))
        marker = data_dir / ".seeded"
        if seed_demo and not marker.exists():
            progress("seeding demo data")
            demo = clients["demo"]
            bearer = token(platform.url("gateway"), demo["client_id"], demo["client_secret"])
            seed(platform.url("gateway"), bearer, progress=lambda step: progress(f"seeded {step}"))
            marker.write_text("seeded\n")
    except BaseException:
        platform.stop()
        raise
    return Launched(platform, clients, time.monotonic() - started)
