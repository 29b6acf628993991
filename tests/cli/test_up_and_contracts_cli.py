"""What `tally up` prints to paste, and `--data-dir` on the contracts commands."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from tally import cli
from tally.supervisor import Platform

runner = CliRunner()


def test_the_hint_of_tally_up_is_whole_commands_on_a_narrow_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = io.StringIO()
    monkeypatch.setattr(cli, "console", Console(file=out, width=40, color_system=None))
    demo = {"client_id": "cl_" + "i" * 30, "client_secret": "s" * 43}

    cli._print_urls(Platform(tmp_path), {"demo": demo}, 1.0)

    lines = out.getvalue().splitlines()
    assert f"  export CLIENT_ID={demo['client_id']} CLIENT_SECRET={demo['client_secret']}" in lines
    assert (
        '  curl -s -u "$CLIENT_ID:$CLIENT_SECRET" -d grant_type=client_credentials '
        "http://127.0.0.1:8000/oauth/token"
    ) in lines


@pytest.mark.parametrize("command", ["export", "check", "release", "diff"])
def test_every_contracts_command_takes_a_data_dir(command: str) -> None:
    result = runner.invoke(cli.app, ["contracts", command, "--help"])
    assert result.exit_code == 0
    assert "--data-dir" in result.output


def test_contracts_diff_accepts_a_data_dir(tmp_path: Path) -> None:
    document = {"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "paths": {}}
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    old.write_text(json.dumps(document))
    new.write_text(json.dumps(document))

    result = runner.invoke(
        cli.app, ["contracts", "diff", str(old), str(new), "--data-dir", str(tmp_path)]
    )

    assert result.exit_code == 0, result.output
    assert "no breaking change" in result.output
