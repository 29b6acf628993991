from __future__ import annotations

from typing import Any

from litestar.testing import TestClient

from tests.support.tokens import TestIssuer


def test_without_a_token_is_401(client: TestClient[Any]) -> None:
    response = client.get("/wms/v1/warehouses", headers={"Authorization": ""})

    assert response.status_code == 401
    assert response.json()["type"] == "/problems/unauthorized"


def test_token_for_another_audience_is_403_insufficient_scope(
    client: TestClient[Any], issuer: TestIssuer
) -> None:
    token = issuer.token("wms:read", audience="erp")
    response = client.get("/wms/v1/warehouses", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 403  # a good token without the grant (decision 0023)
    assert response.json()["type"] == "/problems/insufficient-scope"


def test_read_scope_cannot_write(client: TestClient[Any], issuer: TestIssuer) -> None:
    token = issuer.token("wms:read", audience="wms")
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "k"}
    response = client.post(
        "/wms/v1/receipts",
        json={"warehouse_id": "WH1", "lines": [{"sku": "SKU-1", "quantity": 1}]},
        headers=headers,
    )

    assert response.status_code == 403
    assert response.json()["type"] == "/problems/insufficient-scope"
    assert client.get("/wms/v1/warehouses", headers=headers).status_code == 200


def test_write_scope_alone_cannot_read(client: TestClient[Any], issuer: TestIssuer) -> None:
    token = issuer.token("wms:write", audience="wms")
    response = client.get("/wms/v1/stock", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 403
