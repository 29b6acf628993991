"""Runs every service as its own process, restarts a crashed one, stops them all cleanly.

`tally up` and the end-to-end tests use this same class, so the tests exercise the
code path a user runs.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from shared.topology import SERVICES, ServiceSpec

log = logging.getLogger("tally.supervisor")

STOP_GRACE_SECONDS = 8.0


def pid_file(data_dir: Path, service: str) -> Path:
    """Where the running service's process id is written (``tally simulate --chaos``
    and operators' tools find the processes of this data dir's platform there)."""
    return data_dir / "run" / f"{service}.pid"


@dataclass
class ServiceProcess:
    spec: ServiceSpec
    port: int
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    log_path: Path | None = None


@dataclass
class Platform:
    data_dir: Path
    ports: dict[str, int] = field(default_factory=lambda: {s.name: s.port for s in SERVICES})
    extra_env: dict[str, str] = field(default_factory=dict)
    host: str = "127.0.0.1"
    processes: dict[str, ServiceProcess] = field(default_factory=dict)

    def url(self, service: str) -> str:
        return f"http://{self.host}:{self.ports[service]}"

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env["TALLY_DATA_DIR"] = str(self.data_dir)
        for spec in SERVICES:
            env[f"TALLY_{spec.name.upper()}_PORT"] = str(self.ports[spec.name])
            env[f"TALLY_{spec.name.upper()}_URL"] = self.url(spec.name)
        env.update(self.extra_env)
        return env

    def _spawn(self, proc: ServiceProcess) -> None:
        logs = self.data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        proc.log_path = logs / f"{proc.spec.name}.log"
        with proc.log_path.open("ab") as out:
            proc.process = subprocess.Popen(  # noqa: S603 - our own interpreter and service name
                [sys.executable, "-m", "tally", "serve", proc.spec.name],
                env=self.environment(),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches the supervisor only; it stops children
            )
        pid_file(self.data_dir, proc.spec.name).parent.mkdir(parents=True, exist_ok=True)
        pid_file(self.data_dir, proc.spec.name).write_text(f"{proc.process.pid}\n")

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for spec in SERVICES:
            proc = ServiceProcess(spec, self.ports[spec.name])
            self.processes[spec.name] = proc
            self._spawn(proc)

    def wait_ready(self, timeout: float = 60.0, on_ready: object = None) -> dict[str, float]:
        """Polls every /readyz; returns seconds until each answered 200."""
        started = time.monotonic()
        ready: dict[str, float] = {}
        with httpx.Client(timeout=2.0) as client:
            while len(ready) < len(self.processes):
                for name, proc in self.processes.items():
                    if name in ready:
                        continue
                    if proc.process and proc.process.poll() is not None:
                        raise RuntimeError(
                            f"{name} exited with {proc.process.returncode}; see {proc.log_path}"
                        )
                    try:
                        if client.get(f"{self.url(name)}/readyz").status_code == 200:
                            ready[name] = time.monotonic() - started
                            if callable(on_ready):
                                on_ready(name)
                    except httpx.HTTPError:
                        pass
                if time.monotonic() - started > timeout:
                    missing = sorted(set(self.processes) - set(ready))
                    raise TimeoutError(f"not ready after {timeout:.0f}s: {', '.join(missing)}")
                time.sleep(0.1)
        return ready

    def restart_crashed(self) -> list[str]:
        """Restarts every service whose process has exited; returns their names."""
        restarted = []
        for name, proc in self.processes.items():
            if proc.process is not None and proc.process.poll() is not None:
                code = proc.process.returncode
                proc.restarts += 1
                log.warning(
                    "%s exited with %s; restarting (restart #%d)", name, code, proc.restarts
                )
                self._spawn(proc)
                restarted.append(name)
        return restarted

    def stop(self) -> None:
        for name in self.processes:
            pid_file(self.data_dir, name).unlink(missing_ok=True)
        for proc in self.processes.values():
            if proc.process and proc.process.poll() is None:
                proc.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for proc in self.processes.values():
            if proc.process is None:
                continue
            try:
                proc.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.process.kill()
                proc.process.wait()
