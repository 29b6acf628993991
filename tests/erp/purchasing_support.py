"""Fixtures of the ERP purchasing and inventory tests: the service with its settings
(to read what it published on the embedded event log)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

from shared.settings import Settings, load_settings
from system_apis.erp.app import create_app
from tests.support.tokens import TestIssuer


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def erp(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    issuer: TestIssuer,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[TestClient[Any], Settings]]:
    for name in ("TALLY_DATABASE_URL", "TALLY_ERP_DATABASE_URL", "TALLY_BUS_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings("erp", data_dir=tmp_path)
    if request.param == "postgres":
        settings = msgspec.structs.replace(
            settings, database_url=request.getfixturevalue("postgres_url")
        )
    app = create_app(settings=settings, key_source=issuer.key_source())
    with TestClient(app) as client:
        client.headers["Authorization"] = (
            f"Bearer {issuer.token('erp:read erp:write', audience='erp')}"
        )
        yield client, settings


def post(client: TestClient[Any], path: str, body: dict[str, Any], *, key: str) -> Any:
    return client.post(path, json=body, headers={"Idempotency-Key": key})
