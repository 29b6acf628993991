"""`tally clients ...` against the data directory of a running gateway."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from typer.testing import CliRunner

from tally.commands.clients import clients_app
from tests.gateway.helpers import token_for
from tests.support.polling import wait_until

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


def test_rotate_secret_prints_a_new_secret_and_the_old_one_stops_working(
    http: httpx.Client, data_dir: Path
) -> None:
    created = runner.invoke(
        clients_app,
        [
            "create",
            "--name",
            "rotor",
            "--scopes",
            "erp:read",
            "--json",
            "--data-dir",
            str(data_dir),
        ],
    )
    old = json.loads(created.stdout)
    old_token = token_for(http, old["client_id"], old["client_secret"])
    rotated = runner.invoke(
        clients_app,
        ["rotate-secret", old["client_id"], "--revoke-tokens", "--json", "--data-dir",
         str(data_dir)],
    )  # fmt: skip
    assert rotated.exit_code == 0, rotated.output
    new = json.loads(rotated.stdout)
    assert new["client_id"] == old["client_id"]
    assert new["client_secret"] != old["client_secret"]
    refused = http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(old["client_id"], old["client_secret"]),
    )
    assert refused.status_code == 401
    token_for(http, new["client_id"], new["client_secret"])
    # --revoke-tokens: the token got with the old secret is refused too
    wait_until(
        lambda: (
            not http.get(
                "/erp/v1/items/A", headers={"Authorization": f"Bearer {old_token}"}
            ).is_success
        ),
        what="the old token to be refused",
    )
    table = runner.invoke(
        clients_app, ["rotate-secret", old["client_id"], "--data-dir", str(data_dir)]
    )
    assert "shown this once" in table.stdout
    missing = runner.invoke(
        clients_app, ["rotate-secret", "cli_nobody", "--data-dir", str(data_dir)]
    )
    assert missing.exit_code == 1


def test_keys_commands_are_registered_in_tally() -> None:
    from tally.cli import app

    result = runner.invoke(app, ["keys", "--help"])
    assert result.exit_code == 0
    for command in ("rotate", "list", "prune"):
        assert command in result.stdout
