"""Services as real processes for the fault tests, started the way the supervisor
starts them (``python -m tally serve NAME`` with ``TALLY_*`` variables), so a SIGKILL
is a real process death: no ``finally``, no lifespan shutdown, no flush.

Tokens: the services verify bearer tokens against ``TALLY_JWKS_URL``. Instead of a
gateway, ``JwksServer`` serves the public key of a ``TestIssuer`` on a loopback port,
so a test can mint tokens the service processes accept.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.support.polling import Exited, wait_until_answers
from tests.support.ports import free_port
from tests.support.tokens import TestIssuer

FAULT_VISIBILITY_TIMEOUT = 5.0


class JwksServer:
    """Serves ``/.well-known/jwks.json`` with the issuer's public key."""

    def __init__(self, issuer: TestIssuer) -> None:
        body = json.dumps({"keys": [issuer.key.as_dict(private=False)]}).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        self.issuer = issuer
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/.well-known/jwks.json"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> JwksServer:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class ServiceProcess:
    """One service as its own process on a free port, with its log in the data dir."""

    def __init__(
        self,
        name: str,
        data_dir: Path,
        *,
        bus_url: str,
        jwks: JwksServer | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.data_dir = data_dir
        self.bus_url = bus_url
        self.jwks = jwks
        self.extra_env = dict(env or {})
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir / "logs" / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def environment(self, extra: dict[str, str]) -> dict[str, str]:
        # Nothing of the caller's TALLY_* environment leaks in (a fault flag least of all).
        env = {k: v for k, v in os.environ.items() if not k.startswith("TALLY_")}
        # Compiled modules cached outside the repo: a restart costs ~1.5 s, not ~3.5 s.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / "tally-faults-pycache")
        env |= {
            "TALLY_DATA_DIR": str(self.data_dir),
            "TALLY_BUS_URL": self.bus_url,
            "TALLY_HOST": "127.0.0.1",
            f"TALLY_{self.name.upper()}_PORT": str(self.port),
            # A killed consumer's unacked entries come back after this: short, so the
            # tests do not wait the default 30 s.
            "TALLY_BUS_VISIBILITY_TIMEOUT": str(FAULT_VISIBILITY_TIMEOUT),
        }
        if self.jwks is not None:
            env["TALLY_ISSUER"] = self.jwks.issuer.issuer
            env["TALLY_JWKS_URL"] = self.jwks.url
        return env | self.extra_env | extra

    def start(self, **extra_env: str) -> ServiceProcess:
        assert self.process is None or self.process.poll() is not None, "already running"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tally", "serve", self.name],
                env=self.environment(extra_env),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_ready(self, timeout: float = 30.0) -> None:
        try:
            wait_until_answers(f"{self.url}/readyz", alive=self.alive, timeout=timeout)
        except Exited:
            raise RuntimeError(f"{self.name} exited during start-up:\n{self.log_tail()}") from None
        except TimeoutError:
            raise TimeoutError(
                f"{self.name} not ready in {timeout} s:\n{self.log_tail()}"
            ) from None

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to clean up."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def wait_exit(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=8)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
