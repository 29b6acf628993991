"""The security suite runs against the real platform (every service a process, the
gateway in front, as `tally up` starts them): two customers with one shipped and
invoiced order each, and OAuth clients registered with the operator's CLI."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.security.helpers import (
    PORTAL_CLIENT_SCOPES,
    PRICE,
    Tenant,
    World,
    atp,
    register_client,
    shipped_and_invoiced,
)
from tests.support.platform import PlatformClient
from tests.support.polling import eventually


@pytest.fixture(scope="package")
def admin(platform: PlatformClient) -> Iterator[httpx.Client]:
    """The demo client: every scope, no customer binding (staff)."""
    with platform.client() as api:
        yield api


@pytest.fixture(scope="package")
def world(platform: PlatformClient, admin: httpx.Client) -> World:
    tag = uuid.uuid4().hex[:8].upper()
    sku = f"SEC-{tag}"
    item = {
        "sku": sku,
        "name": "Security suite item",
        "unit_price": {"amount_minor": PRICE, "currency": "USD"},
    }
    assert admin.post("/erp/v1/items", json=item).status_code == 201
    receipt = {"warehouse_id": "WH-EAST", "lines": [{"sku": sku, "quantity": 100}]}
    received = admin.post(
        "/wms/v1/receipts", json=receipt, headers={"Idempotency-Key": f"rcv-{tag}"}
    )
    assert received.status_code == 201, received.text
    assert eventually(lambda: atp(admin, sku) == 100), "the receipt never reached availability"
    tenants = []
    for name in ("A", "B"):
        customer_id = f"CUST-SEC-{name}-{tag}"
        customer = {
            "customer_id": customer_id,
            "name": f"Security tenant {name}",
            "credit_limit": {"amount_minor": 10**9, "currency": "USD"},
        }
        assert admin.post("/erp/v1/customers", json=customer).status_code == 201
        order_id, invoice_id, fo_id = shipped_and_invoiced(admin, customer_id, sku)
        creds = register_client(platform, PORTAL_CLIENT_SCOPES, customer=customer_id)
        tenants.append(Tenant(customer_id, creds, order_id, invoice_id, fo_id))
    return World(sku=sku, a=tenants[0], b=tenants[1])
