"""The audit log: every call (refusals included) lands in the gateway's store off the
hot path, a clean stop flushes the rest, and it reads back through `tally audit` and
`GET /audit` (admins only, cursor paginated)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from gateway.audit.store import AuditStore
from tally.cli import app as cli
from tests.gateway.helpers import Gateway, gateway_with
from tests.gateway.upstreams import Upstream
from tests.support.polling import eventually
from tests.support.problems import assert_problem


def _rows(gateway: Gateway, **filters: Any) -> list[dict[str, Any]]:
    store = AuditStore(gateway.settings.database_url)
    try:
        return store.query(limit=1000, **filters)
    finally:
        store.close()


def _wait_for(gateway: Gateway, count: int, **filters: Any) -> list[dict[str, Any]]:
    """The rows once ``count`` are there (the writer flushes every 0.2 s), or the rows
    there are when the wait gives up (the caller asserts)."""
    eventually(lambda: len(_rows(gateway, **filters)) >= count)
    return _rows(gateway, **filters)


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, upstream: tuple[Upstream, str]
) -> Iterator[Gateway]:
    data_dir: Path = tmp_path_factory.mktemp("audit")
    with gateway_with(data_dir, upstream[1], rate_limits={"bronze": (1000, 2)}) as gw:
        yield gw


def test_every_call_is_recorded_with_who_what_and_how_long(gateway: Gateway) -> None:
    client_id, token = gateway.new_client("orders:read", customer_id="CUST-7")
    with gateway.client(Authorization=f"Bearer {token}") as http:
        ok = http.get("/orders/v1/orders/S-1?x=1", headers={"X-Correlation-Id": "audit-1"})
        http.get("/orders/v1/orders")
        limited = http.get("/orders/v1/orders")  # third call: over 2 per minute
    assert ok.status_code == 200
    assert limited.status_code == 429
    rows = _wait_for(gateway, 3, client_id=client_id)
    assert [row["status"] for row in rows] == [429, 200, 200]  # newest first
    first = rows[-1]
    assert first["customer_id"] == "CUST-7"
    assert first["method"] == "GET"
    assert first["route"] == "/orders/v1/{path}"
    assert first["path"] == "/orders/v1/orders/S-1"
    assert first["correlation_id"] == "audit-1"
    assert first["latency_ms"] > 0
    assert first["at"].endswith("Z") and first["at"] <= rows[0]["at"]


def test_unauthenticated_refusals_are_recorded_too(gateway: Gateway) -> None:
    with gateway.client() as http:
        response = http.post("/orders/v1/orders", json={}, headers={"X-Correlation-Id": "anon-1"})
    assert response.status_code == 401
    rows = [row for row in _wait_for(gateway, 1, status=401) if row["correlation_id"] == "anon-1"]
    assert rows and rows[0]["client_id"] is None and rows[0]["method"] == "POST"


def test_a_clean_stop_flushes_what_is_pending(
    tmp_path: Path, upstream: tuple[Upstream, str]
) -> None:
    with gateway_with(tmp_path, upstream[1], audit_flush_seconds=3600) as gateway:
        client_id, token = gateway.new_client("erp:read", tier="internal")
        with gateway.client(Authorization=f"Bearer {token}") as http:
            for _ in range(5):
                assert http.get("/erp/v1/items").status_code == 200
        assert _rows(gateway, client_id=client_id) == []  # not flushed for an hour...
    assert len(_rows(gateway, client_id=client_id)) == 5  # ...but on the stop


def test_tally_audit_filters_and_prints_json(gateway: Gateway) -> None:
    client_id, token = gateway.new_client("erp:read", tier="internal")
    with gateway.client(Authorization=f"Bearer {token}") as http:
        http.get("/erp/v1/items")
        http.get("/erp/v2/items")  # 404
    _wait_for(gateway, 2, client_id=client_id)
    data_dir = str(gateway.settings.data_dir)
    result = CliRunner().invoke(
        cli, ["audit", "--client", client_id, "--since", "10m", "--json", "--data-dir", data_dir]
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert {line["client_id"] for line in lines} == {client_id}
    assert [line["status"] for line in lines] == [200]  # the 404 had no verified client
    by_status = CliRunner().invoke(
        cli, ["audit", "--status", "404", "--limit", "1", "--json", "--data-dir", data_dir]
    )
    assert [json.loads(line)["path"] for line in by_status.stdout.splitlines()] == ["/erp/v2/items"]
    table = CliRunner().invoke(cli, ["audit", "--client", client_id, "--data-dir", data_dir])
    assert table.exit_code == 0 and "Audit log: 1 call(s)" in table.stdout
    bad = CliRunner().invoke(cli, ["audit", "--since", "yesterday", "--data-dir", data_dir])
    assert bad.exit_code == 2


def test_get_audit_is_for_admins_and_cursor_paginated(gateway: Gateway) -> None:
    client_id, token = gateway.new_client("erp:read", tier="internal")
    with gateway.client(Authorization=f"Bearer {token}") as http:
        for n in range(5):
            http.get(f"/erp/v1/items/{n}")
    _wait_for(gateway, 5, client_id=client_id)
    admin_id, admin = gateway.new_client("admin", tier="internal")
    pages: list[dict[str, Any]] = []
    with gateway.client(Authorization=f"Bearer {admin}") as http:
        cursor = None
        while True:
            params: dict[str, Any] = {"client": client_id, "limit": 2}
            if cursor:
                params["cursor"] = cursor
            page = http.get("/audit", params=params)
            assert page.status_code == 200, page.text
            pages.append(page.json())
            cursor = page.json()["next_cursor"]
            if cursor is None:
                break
        bad = http.get("/audit", params={"cursor": "x"})
    paths = [item["path"] for page in pages for item in page["items"]]
    assert paths == [f"/erp/v1/items/{n}" for n in reversed(range(5))]
    assert [len(page["items"]) for page in pages] == [2, 2, 1]
    assert_problem(bad, 400)
    with gateway.client(Authorization=f"Bearer {token}") as http:
        forbidden = http.get("/audit")
    assert_problem(forbidden, 403, "insufficient-scope")
    with gateway.client() as http:
        anonymous = http.get("/audit")
    assert_problem(anonymous, 401, "unauthorized")
    reads = _wait_for(gateway, 3, client_id=admin_id)  # reading the log is audited too
    assert {row["route"] for row in reads} == {"/audit"}
