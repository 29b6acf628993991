"""A request resolves its handler's dependencies in turn, without a task group per
request (decision 0053): the principal and the services' constants need no concurrency."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.routes import HTTPRoute
from litestar.testing import TestClient

from shared.settings import load_settings
from tests.support.stack import build_service_app
from tests.support.tokens import TestIssuer

SERVICES = ("erp", "wms", "availability", "order_to_ship", "billing", "portal")


def _app(service: str, tmp_path: Path, issuer: TestIssuer) -> Any:
    settings = msgspec.structs.replace(
        load_settings(service, data_dir=tmp_path),
        database_url=f"sqlite+aiosqlite:///{tmp_path / f'{service}.db'}",
        bus_url=f"sqlite:///{tmp_path / 'events.db'}",
    )
    return build_service_app(service, settings, issuer)


@pytest.mark.parametrize("service", SERVICES)
def test_every_handler_resolves_its_dependencies_one_at_a_time(
    service: str, tmp_path: Path
) -> None:
    app = _app(service, tmp_path, TestIssuer())
    several = 0
    for route in app.routes:
        if isinstance(route, HTTPRoute):
            for _, kwargs_model in route.route_handler_map.values():
                batches = kwargs_model.dependency_batches
                assert all(len(batch) == 1 for batch in batches), (route.path, batches)
                several += len(batches) > 1
    assert several, f"{service}: no handler takes two dependencies; the check checks nothing"


def test_a_request_with_two_dependencies_opens_no_task_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import litestar._kwargs.kwargs_model as kwargs_model

    opened: list[int] = []
    real = kwargs_model.create_task_group

    def counting() -> Any:
        opened.append(1)
        return real()

    monkeypatch.setattr(kwargs_model, "create_task_group", counting)
    issuer = TestIssuer()
    with TestClient(_app("erp", tmp_path, issuer)) as client:
        token = issuer.token("erp:read", audience="erp")
        # order-terms takes the ERP port and the principal: one batch of two before 0053
        answer = client.get(
            "/erp/v1/customers/NOBODY/order-terms",
            params={"sku": "SKU-1"},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert answer.status_code == 404, answer.text
    assert answer.json()["type"] == "/problems/customer-not-found"
    assert opened == []
