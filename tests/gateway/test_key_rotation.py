"""Signing key rotation: `tally keys rotate` while the gateway runs. New tokens carry
the new kid at once, tokens signed before still verify (the old key stays in the
JWKS until they have expired), and a service's cached JWKS catches up on the new kid."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from gateway.clients.registry import ClientRegistry
from gateway.oauth.keys import RETIRE_MARGIN_SECONDS, KeyStore
from shared.auth.verifier import RemoteJwks, TokenVerifier
from shared.settings import Settings
from tally.commands.keys import keys_app
from tests.gateway.helpers import token_for

runner = CliRunner()


def _header(token: str) -> dict[str, Any]:
    part = token.split(".")[0]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


def _kids(http: httpx.Client) -> set[str]:
    return {key["kid"] for key in http.get("/.well-known/jwks.json").json()["keys"]}


def test_rotation_without_restart(
    http: httpx.Client, registry: ClientRegistry, data_dir: Path, settings: Settings
) -> None:
    client = registry.create("rotating", "erp:read")
    before = token_for(http, *client)
    old_kid = _header(before)["kid"]
    jwks_url = f"{http.base_url}/.well-known/jwks.json"

    async def service_side() -> None:
        async with httpx.AsyncClient() as session:
            # a service that fetched the JWKS before the rotation
            verifier = TokenVerifier(
                RemoteJwks(jwks_url, session),  # fetched a moment ago: the new kid waits
                issuer=settings.issuer,
                audience="erp",
            )
            await verifier.verify(before)

            rotated = runner.invoke(keys_app, ["rotate", "--json", "--data-dir", str(data_dir)])
            assert rotated.exit_code == 0, rotated.output
            new_kid = json.loads(rotated.stdout)["active_kid"]
            assert json.loads(rotated.stdout)["previous_kid"] == old_kid
            assert new_kid != old_kid

            after = token_for(http, *client)  # the running gateway signs with the new key
            assert _header(after)["kid"] == new_kid
            assert _kids(http) == {old_kid, new_kid}
            for token in (before, after):  # both accepted at the gateway...
                response = http.get("/erp/v1/items/A", headers={"Authorization": f"Bearer {token}"})
                assert response.status_code == 200
                assert (await verifier.verify(token)).client_id == client[0]  # ...and a service

    asyncio.run(service_side())

    listed = runner.invoke(keys_app, ["list", "--json", "--data-dir", str(data_dir)])
    rows = {row["kid"]: row for row in json.loads(listed.stdout)["items"]}
    assert rows[old_kid]["status"] == "verifying"
    assert rows[old_kid]["verify_until"] >= int(time.time()) + 900
    assert [row["status"] for row in rows.values()].count("active") == 1
    # nothing has retired yet: prune keeps both
    pruned = runner.invoke(keys_app, ["prune", "--data-dir", str(data_dir)])
    assert "removed 0" in pruned.stdout
    assert len(_kids(http)) == 2


def test_old_key_verifies_for_the_token_lifetime_plus_a_margin(tmp_path: Path) -> None:
    store = KeyStore.in_data_dir(tmp_path)
    first = store.active.kid
    now = int(time.time())
    second = store.rotate(max_token_lifetime=600)
    infos = {info.kid: info for info in store.describe()}
    assert infos[second].status == "active"
    assert infos[first].status == "verifying"
    assert infos[first].verify_until is not None
    assert now + 600 + RETIRE_MARGIN_SECONDS <= infos[first].verify_until <= now + 700
    assert {key["kid"] for key in store.public_jwks()["keys"]} == {first, second}
    assert all("d" not in key for key in store.public_jwks()["keys"])


def test_retired_keys_leave_the_jwks_and_prune_drops_them(tmp_path: Path) -> None:
    store = KeyStore.in_data_dir(tmp_path)
    first = store.active.kid
    second = store.rotate(max_token_lifetime=60)
    path = tmp_path / "keys" / "signing-keys.json"
    document = json.loads(path.read_text())
    document["meta"][first]["verify_until"] = int(time.time()) - 1  # its tokens are gone
    path.write_text(json.dumps(document))
    assert store.reload_if_changed() is True
    assert {key["kid"] for key in store.public_jwks()["keys"]} == {second}
    assert {info.kid: info.status for info in store.describe()}[first] == "retired"
    assert store.prune() == [first]
    assert [info.kid for info in KeyStore.in_data_dir(tmp_path).describe()] == [second]
    assert store.prune() == []  # the active key is never pruned


def test_a_replica_sees_a_rotation_by_another_process(tmp_path: Path) -> None:
    gateway = KeyStore.in_data_dir(tmp_path)
    cli = KeyStore.in_data_dir(tmp_path)
    assert gateway.reload_if_changed() is False  # only a stat when nothing changed
    new_kid = cli.rotate()
    assert gateway.reload_if_changed() is True
    assert gateway.active.kid == new_kid


def test_a_key_file_written_by_an_older_gateway_still_loads(tmp_path: Path) -> None:
    store = KeyStore.in_data_dir(tmp_path)
    path = tmp_path / "keys" / "signing-keys.json"
    document = json.loads(path.read_text())
    path.write_text(json.dumps({"active_kid": document["active_kid"], "keys": document["keys"]}))
    old = KeyStore(path)
    assert old.active.kid == store.active.kid
    assert old.rotate() != store.active.kid


def test_a_bad_lifetime_setting_stops_a_rotation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = KeyStore.in_data_dir(tmp_path).active.kid
    monkeypatch.setenv("TALLY_TOKEN_LIFETIME_SECONDS", "soon")
    result = runner.invoke(keys_app, ["rotate", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "TALLY_TOKEN_LIFETIME_SECONDS" in result.output
    assert [info.kid for info in KeyStore.in_data_dir(tmp_path).describe()] == [before]
