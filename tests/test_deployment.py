"""docker-compose.yml cannot be run here (no Docker engine), so it is validated:
every service of the topology is deployed with `tally serve`, on the variables the
settings actually read."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from shared.settings import load_settings
from shared.topology import SERVICES

COMPOSE = Path(__file__).resolve().parents[1] / "docker-compose.yml"


def test_every_service_is_deployed_with_tally_serve() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    for spec in SERVICES:
        assert spec.name in services, f"{spec.name} missing from docker-compose.yml"
        assert services[spec.name]["command"] == ["tally", "serve", spec.name]
        assert {"postgres", "redis"} <= set(services[spec.name]["depends_on"])


def use_compose_environment(service: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The service's environment from docker-compose.yml (its fixed values; the
    ``${...}`` ones come from the operator)."""
    compose = yaml.safe_load(COMPOSE.read_text())
    for name, value in compose["services"][service]["environment"].items():
        if "${" not in str(value):
            monkeypatch.setenv(name, str(value))


def test_compose_environment_is_what_the_settings_read(monkeypatch, tmp_path) -> None:
    use_compose_environment("order_to_ship", monkeypatch)
    monkeypatch.setenv("TALLY_ORDER_TO_SHIP_CLIENT_ID", "cid")
    monkeypatch.setenv("TALLY_ORDER_TO_SHIP_CLIENT_SECRET", "secret")
    settings = load_settings("order_to_ship")
    assert settings.database_url.endswith("/tally_order_to_ship")
    assert settings.service_urls["erp"] == "http://erp:8101"
    assert settings.host == "0.0.0.0"
    assert settings.client_id == "cid"
    created = (COMPOSE.parent / "docs/deploy/create-databases.sql").read_text()
    for spec in SERVICES:
        assert f"tally_{spec.name}" in created


def test_the_availability_service_runs_a_worker_per_core(monkeypatch) -> None:
    use_compose_environment("availability", monkeypatch)
    assert load_settings("availability").workers == 2
    assert load_settings("availability").database_url.endswith("/tally_availability")
