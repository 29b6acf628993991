"""``tally serve``: what it refuses before starting anything."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tally.cli import app

runner = CliRunner()


def test_the_gateway_runs_several_workers_only_with_shared_rate_limits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TALLY_REDIS_URL", raising=False)
    # serve writes these to the environment (for its workers): restored after the test
    monkeypatch.setenv("TALLY_GATEWAY_WORKERS", "1")
    monkeypatch.setenv("TALLY_DATA_DIR", str(tmp_path))
    result = runner.invoke(app, ["serve", "gateway", "--workers", "2", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "TALLY_REDIS_URL" in result.output


def test_an_unknown_service_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TALLY_DATA_DIR", str(tmp_path))
    result = runner.invoke(app, ["serve", "nothing", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "unknown service" in result.output
