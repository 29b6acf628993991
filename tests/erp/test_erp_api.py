"""The ERP system API on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from litestar.testing import TestClient

from tests.erp.money import book, customer, goods_issue
from tests.support.tokens import TestIssuer

INVOICE = {
    "order_id": "ORD-1",
    "shipment_id": "SHP-1",
    "customer_id": "CUST-A",
    "lines": [
        {"sku": "SKU-1", "quantity": 3, "unit_price": {"amount_minor": 1250, "currency": "USD"}},
        {"sku": "SKU-2", "quantity": 1, "unit_price": {"amount_minor": 99, "currency": "USD"}},
    ],
}


def test_item_is_created_and_read_back(client: TestClient) -> None:
    body = {"sku": "SKU-1", "name": "Bolt", "unit_price": {"amount_minor": 1250, "currency": "USD"}}
    created = client.post("/erp/v1/items", json=body)
    assert created.status_code == 201
    read = client.get("/erp/v1/items/SKU-1")
    assert read.status_code == 200
    assert read.json()["unit_price"] == {"amount_minor": 1250, "currency": "USD"}
    assert read.json()["base_uom"] == "EA"


def test_duplicate_item_is_a_conflict_problem(client: TestClient) -> None:
    body = {"sku": "SKU-1", "name": "Bolt", "unit_price": {"amount_minor": 1, "currency": "USD"}}
    assert client.post("/erp/v1/items", json=body).status_code == 201
    again = client.post("/erp/v1/items", json={**body, "name": "Other"})
    assert again.status_code == 409
    assert again.headers["content-type"].startswith("application/problem+json")
    assert again.json()["type"] == "/problems/duplicate-item"
    assert client.get("/erp/v1/items/SKU-1").json()["name"] == "Bolt"


@pytest.mark.parametrize(
    "bad",
    [
        {"sku": "", "name": "x", "unit_price": {"amount_minor": 1, "currency": "USD"}},
        {"sku": "A", "name": "x", "unit_price": {"amount_minor": -5, "currency": "USD"}},
        {"sku": "A", "name": "x", "unit_price": {"amount_minor": 5, "currency": "usd"}},
        {"sku": "A", "name": "x", "unit_price": {"amount_minor": 5, "currency": "USD"}, "extra": 1},
    ],
)
def test_bad_item_is_refused_and_nothing_is_written(client: TestClient, bad: dict) -> None:
    response = client.post("/erp/v1/items", json=bad)
    assert response.status_code == 400
    assert response.json()["type"] == "/problems/invalid-request"
    assert client.get("/erp/v1/items").json()["items"] == []


@pytest.fixture
def shipped(client: TestClient) -> None:
    """ORD-1 booked for CUST-A and its shipment SHP-1 posted: INVOICE may be issued."""
    customer(client)
    book(client, "ORD-1", [("SKU-1", 3, 1250), ("SKU-2", 1, 99)])
    goods_issue(client, "SHP-1", [("SKU-1", 3), ("SKU-2", 1)])


@pytest.mark.usefixtures("shipped")
def test_invoice_total_is_quantity_times_price(client: TestClient) -> None:
    response = client.post("/erp/v1/invoices", json=INVOICE, headers={"Idempotency-Key": "k1"})
    assert response.status_code == 201
    assert response.json()["total"] == {"amount_minor": 3 * 1250 + 99, "currency": "USD"}


@pytest.mark.usefixtures("shipped")
def test_invoice_replay_same_key_returns_the_same_invoice(client: TestClient) -> None:
    first = client.post("/erp/v1/invoices", json=INVOICE, headers={"Idempotency-Key": "k1"})
    second = client.post("/erp/v1/invoices", json=INVOICE, headers={"Idempotency-Key": "k1"})
    assert second.status_code == 201
    assert second.headers["idempotent-replayed"] == "true"
    assert second.json()["invoice_id"] == first.json()["invoice_id"]
    listed = client.get("/erp/v1/invoices", params={"order_id": "ORD-1"}).json()["items"]
    assert len(listed) == 1


@pytest.mark.usefixtures("shipped")
def test_same_key_with_another_payload_is_422(client: TestClient) -> None:
    client.post("/erp/v1/invoices", json=INVOICE, headers={"Idempotency-Key": "k1"})
    other = {**INVOICE, "shipment_id": "SHP-2"}
    response = client.post("/erp/v1/invoices", json=other, headers={"Idempotency-Key": "k1"})
    assert response.status_code == 422
    assert response.json()["type"] == "/problems/idempotency-key-reused"


@pytest.mark.usefixtures("shipped")
def test_a_shipment_is_invoiced_once_even_with_another_key(client: TestClient) -> None:
    client.post("/erp/v1/invoices", json=INVOICE, headers={"Idempotency-Key": "k1"})
    response = client.post("/erp/v1/invoices", json=INVOICE, headers={"Idempotency-Key": "k2"})
    assert response.status_code == 409
    assert len(client.get("/erp/v1/invoices").json()["items"]) == 1


@pytest.mark.usefixtures("shipped")
def test_concurrent_retries_of_one_key_create_one_invoice(client: TestClient) -> None:
    def post(_: int) -> int:
        response = client.post(
            "/erp/v1/invoices", json=INVOICE, headers={"Idempotency-Key": "same"}
        )
        return response.status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(post, range(16)))
    assert set(statuses) == {201}
    assert len(client.get("/erp/v1/invoices").json()["items"]) == 1


def test_invoice_requires_an_idempotency_key(client: TestClient) -> None:
    response = client.post("/erp/v1/invoices", json=INVOICE)
    assert response.status_code == 400
    assert client.get("/erp/v1/invoices").json()["items"] == []


def test_a_client_bound_to_a_customer_never_reaches_the_system_api(
    client: TestClient, issuer: TestIssuer
) -> None:
    """System APIs are internal (ADR 0014): even its own customer record is refused."""
    customer = {
        "customer_id": "CUST-A",
        "name": "A",
        "credit_limit": {"amount_minor": 100, "currency": "USD"},
    }
    assert client.post("/erp/v1/customers", json=customer).status_code == 201
    for bound_to in ("CUST-A", "CUST-B"):
        token = issuer.token("erp:read erp:write", audience="erp", customer_id=bound_to)
        headers = {"Authorization": f"Bearer {token}"}
        read = client.get("/erp/v1/customers/CUST-A", headers=headers)
        assert read.status_code == 403
        assert read.json()["type"] == "/problems/internal-api"
        write = client.post(
            "/erp/v1/customers", json=customer | {"customer_id": bound_to + "-X"}, headers=headers
        )
        assert write.status_code == 403
    assert client.get("/erp/v1/customers/CUST-A-X").status_code == 404


@pytest.mark.parametrize(
    ("token_args", "status"),
    [
        ({"scopes": "erp:read", "audience": "erp", "expires_in": -120}, 401),
        ({"scopes": "erp:read", "audience": "wms"}, 403),  # no grant for erp (decision 0023)
        ({"scopes": "erp:read", "audience": "erp", "iss": "https://evil.example"}, 401),
        ({"scopes": "wms:read", "audience": "erp"}, 403),
    ],
)
def test_bad_tokens_are_refused(
    client: TestClient, issuer: TestIssuer, token_args: dict, status: int
) -> None:
    token = issuer.token(**token_args)
    response = client.get("/erp/v1/items", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")


def test_token_signed_by_another_key_is_refused(client: TestClient) -> None:
    stranger = TestIssuer()
    token = stranger.token("erp:read", audience="erp")
    assert (
        client.get("/erp/v1/items", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    )


def test_no_token_is_401(client: TestClient) -> None:
    response = client.get("/erp/v1/items", headers={"Authorization": ""})
    assert response.status_code == 401
