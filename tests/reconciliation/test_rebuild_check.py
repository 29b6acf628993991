from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from typer.testing import CliRunner

from shared.settings import Settings
from tally.cli import app
from tests.availability.helpers import stock


def _execute(settings: Settings, sql: str) -> None:
    async def run() -> None:
        engine = create_async_engine(settings.database_url)
        try:
            async with engine.begin() as conn:
                await conn.execute(text(sql))
        finally:
            await engine.dispose()

    asyncio.run(run())


def test_rebuild_check_reports_a_corrupted_position(
    client: TestClient[Any], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TALLY_AVAILABILITY_DATABASE_URL", settings.database_url)
    stock(client, settings, "WH1", A=10, B=3)
    runner = CliRunner()
    args = ["reconcile", "--rebuild-check", "--json", "--data-dir", str(settings.data_dir)]

    clean = runner.invoke(app, args)
    assert clean.exit_code == 0, clean.output
    assert json.loads(clean.output) == {"drift": []}

    # A write that bypassed the ledger: on_hand of A at WH1 no longer equals its movements.
    _execute(settings, "UPDATE positions SET on_hand = on_hand + 2 WHERE sku = 'A'")
    corrupted = runner.invoke(app, args)
    assert corrupted.exit_code == 1, corrupted.output
    assert json.loads(corrupted.output)["drift"] == [
        {
            "sku": "A",
            "location_id": "WH1",
            "lot": None,
            "bucket": "on_hand",
            "stored": 12,
            "rebuilt": 10,
        }
    ]
    table = runner.invoke(app, [*args[:-3], "--data-dir", str(settings.data_dir)])
    assert table.exit_code == 1
    assert "on_hand" in table.output and "12" in table.output
