from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from process_apis.availability.app import create_app
from shared.settings import Settings, load_settings
from tests.support.tokens import TestIssuer


@pytest.fixture(autouse=True)
def _embedded_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests run on the zero-setup defaults, whatever the shell exports."""
    for name in ("TALLY_DATABASE_URL", "TALLY_AVAILABILITY_DATABASE_URL", "TALLY_BUS_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def issuer() -> TestIssuer:
    return TestIssuer()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings("availability", data_dir=tmp_path)


@pytest.fixture
def client(settings: Settings, issuer: TestIssuer) -> Iterator[TestClient[Any]]:
    app = create_app(settings=settings, key_source=issuer.key_source())
    with TestClient(app) as test_client:
        token = issuer.token("inventory:read inventory:write", audience="availability")
        test_client.headers["Authorization"] = f"Bearer {token}"
        yield test_client
