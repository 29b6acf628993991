"""`tally clients ...` against the data directory of a running gateway."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from typer.testing import CliRunner

from tally.commands.clients import clients_app
from tests.gateway.conftest import token_for

runner = CliRunner()


def test_create_json_prints_usable_credentials(http: httpx.Client, data_dir: Path) -> None:
    result = runner.invoke(
        clients_app,
        ["create", "--name", "acme", "--scopes", "orders:read portal", "--customer", "CUST-A",
         "--tier", "gold", "--json", "--data-dir", str(data_dir)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    credentials = json.loads(result.stdout)
    assert set(credentials) == {"client_id", "client_secret"}
    token = token_for(http, credentials["client_id"], credentials["client_secret"])
    assert token.count(".") == 2


def test_list_shows_clients_without_secrets_and_disable_refuses_tokens(
    http: httpx.Client, data_dir: Path
) -> None:
    created = runner.invoke(
        clients_app,
        ["create", "--name", "leaver", "--scopes", "erp:read", "--json"],
        env={"TALLY_DATA_DIR": str(data_dir)},
    )
    credentials = json.loads(created.stdout)
    listed = runner.invoke(clients_app, ["list", "--json"], env={"TALLY_DATA_DIR": str(data_dir)})
    assert listed.exit_code == 0
    assert credentials["client_secret"] not in listed.stdout
    rows = {row["client_id"]: row for row in json.loads(listed.stdout)["items"]}
    assert rows[credentials["client_id"]]["scopes"] == "erp:read"
    assert rows[credentials["client_id"]]["disabled"] is False

    disabled = runner.invoke(
        clients_app, ["disable", credentials["client_id"], "--data-dir", str(data_dir)]
    )
    assert disabled.exit_code == 0
    response = http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(credentials["client_id"], credentials["client_secret"]),
    )
    assert response.status_code == 401


def test_table_output_warns_that_the_secret_is_shown_once(tmp_path: Path) -> None:
    result = runner.invoke(
        clients_app,
        ["create", "--name", "acme", "--scopes", "erp:read", "--data-dir", str(tmp_path)],
    )
    assert result.exit_code == 0
    assert "shown this once" in result.stdout
    table = runner.invoke(clients_app, ["list", "--data-dir", str(tmp_path)])
    assert "acme" in table.stdout


def test_bad_input_and_unknown_client_fail(tmp_path: Path) -> None:
    bad = runner.invoke(
        clients_app,
        ["create", "--name", "x", "--scopes", "everything", "--data-dir", str(tmp_path)],
    )
    assert bad.exit_code == 2
    assert "unknown scope" in bad.output
    missing = runner.invoke(clients_app, ["disable", "cli_nobody", "--data-dir", str(tmp_path)])
    assert missing.exit_code == 1
