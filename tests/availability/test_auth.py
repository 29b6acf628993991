from __future__ import annotations

from typing import Any

from litestar.testing import TestClient

from tests.support.tokens import TestIssuer


def test_without_a_token_is_401(client: TestClient[Any]) -> None:
    response = client.get("/availability/v1/items/SKU-1", headers={"Authorization": ""})

    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")


def test_a_wms_token_is_not_an_availability_token(
    client: TestClient[Any], issuer: TestIssuer
) -> None:
    token = issuer.token("inventory:read", audience="wms")
    response = client.get(
        "/availability/v1/items/SKU-1", headers={"Authorization": f"Bearer {token}"}
    )

    assert response.status_code == 403  # a good token without the grant (decision 0023)
    assert response.json()["type"] == "/problems/insufficient-scope"


def test_reading_is_not_allocating(client: TestClient[Any], issuer: TestIssuer) -> None:
    token = issuer.token("inventory:read", audience="availability")
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "k"}
    response = client.post(
        "/availability/v1/allocations",
        json={"order_id": "SO-1", "channel": "b2b", "lines": [{"sku": "A", "quantity": 1}]},
        headers=headers,
    )

    assert response.status_code == 403
    assert response.json()["type"] == "/problems/insufficient-scope"
    assert client.get("/availability/v1/items/A", headers=headers).status_code == 200
