"""`tally simulate --chaos`: services are SIGKILLed at random while a 2,000-line day
runs and restarted as `tally up` restarts them; nothing is lost and nothing is done
twice, on the embedded default and on PostgreSQL + Redis."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tally.launcher import launch
from tally.simulate.report import MUST_BE_ZERO
from tests.support.ports import free_ports

pytestmark = pytest.mark.slow

LINES = 2000


@pytest.fixture(scope="module")
def supervised(
    tmp_path_factory: pytest.TempPathFactory, stack_env: dict[str, str]
) -> Iterator[tuple[str, Path]]:
    """The platform with `tally up`'s restart loop, on each stack."""
    data_dir = tmp_path_factory.mktemp("chaos-day")
    launched = launch(data_dir, ports=free_ports(), extra_env=stack_env, seed_demo=False)
    stopping = threading.Event()

    def supervise() -> None:
        while not stopping.wait(0.3):
            launched.platform.restart_crashed()

    thread = threading.Thread(target=supervise, daemon=True)
    thread.start()
    try:
        yield launched.platform.url("gateway"), data_dir
    finally:
        stopping.set()
        thread.join()
        launched.platform.stop()


@pytest.mark.timeout(600)
def test_a_day_with_services_killed_loses_and_doubles_nothing(
    supervised: tuple[str, Path], stack_env: dict[str, str], tmp_path: Path
) -> None:
    gateway, data_dir = supervised
    output = tmp_path / "chaos.json"
    ran = subprocess.run(
        [
            sys.executable,
            "-m",
            "tally",
            "simulate",
            "--lines",
            str(LINES),
            "--seed",
            "11",
            "--duration",
            "18",
            "--chaos",
            "--chaos-every",
            "3",
            "--gateway",
            gateway,
            "--data-dir",
            str(data_dir),
            "--settle",
            "240",
            "--output",
            str(output),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        # the report reads the bus and the ledger; a plain traceback should it stop
        env={**os.environ, **stack_env, "_TYPER_STANDARD_TRACEBACK": "1"},
    )
    assert output.exists(), (ran.stderr[-1500:], _service_errors(data_dir), _restarts(data_dir))
    report: dict[str, Any] = json.loads(output.read_text())
    kills = report["chaos"]["kills"]
    assert sum(kills.values()) >= 3 and len(kills) >= 2, kills
    assert {name: report[name] for name in MUST_BE_ZERO} == dict.fromkeys(MUST_BE_ZERO, 0), (
        report["dead_letters"],
        report["unsettled_orders"],
        report["simulator"],
        _service_errors(data_dir),
    )
    assert ran.returncode == 0
    assert report["lines"]["units"]["shipped"] == report["lines"]["units"]["invoiced"] > 0
    assert report["simulator"]["retries"] > 0  # the parties did meet the outages


def _service_errors(data_dir: Path) -> dict[str, list[str]]:
    """The last errors each service logged: a failed run on CI keeps no logs otherwise."""
    found: dict[str, list[str]] = {}
    for log in sorted((data_dir / "logs").glob("*.log")):
        lines = log.read_text(errors="replace").splitlines()
        errors = [line[:600] for line in lines if '"level": "error"' in line]
        if errors:
            found[log.stem] = errors[-8:]
    return found


def _restarts(data_dir: Path) -> dict[str, list[str]]:
    """When each service last logged starting up, and its last lines (a service that
    could not come back shows why)."""
    found: dict[str, list[str]] = {}
    for log in sorted((data_dir / "logs").glob("*.log")):
        lines = log.read_text(errors="replace").splitlines()
        found[log.stem] = [line[:300] for line in lines[-3:]]
    return found
