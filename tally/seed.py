"""Demo data on first start, loaded through the public APIs (the gateway), so seeding
walks the same path a partner does. Every write is idempotent: a second run changes
nothing."""

from __future__ import annotations

from collections.abc import Callable

import httpx

WAREHOUSES = [
    {"warehouse_id": "WH-EAST", "name": "East distribution centre", "region": "east"},
    {"warehouse_id": "WH-WEST", "name": "West distribution centre", "region": "west"},
]
ITEMS = [
    ("SKU-1001", "Hex bolt M8, box of 100", 1250),
    ("SKU-1002", "Safety gloves, pair", 899),
    ("SKU-1003", "Pallet wrap 500 mm", 2450),
    ("SKU-1004", "Cable ties 300 mm, pack of 100", 575),
    ("SKU-1005", "LED work light 20 W", 3999),
]
CUSTOMERS = [
    {
        "customer_id": "CUST-ACME",
        "name": "Acme Industrial Supply",
        "credit_limit": {"amount_minor": 5_000_000, "currency": "USD"},
    },
    {
        "customer_id": "CUST-GLOBEX",
        "name": "Globex Facilities",
        "credit_limit": {"amount_minor": 1_000_000, "currency": "USD"},
    },
]
STOCK = {"WH-EAST": 500, "WH-WEST": 300}


def token(gateway: str, client_id: str, secret: str) -> str:
    response = httpx.post(
        f"{gateway}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(client_id, secret),
        timeout=30,
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def _created_or_exists(response: httpx.Response) -> None:
    if response.status_code not in (200, 201, 409):
        raise RuntimeError(
            f"seeding failed: {response.request.url} -> {response.status_code} {response.text}"
        )


def seed(gateway: str, bearer: str, progress: Callable[[str], None] = lambda _: None) -> None:
    headers = {"Authorization": f"Bearer {bearer}"}
    with httpx.Client(base_url=gateway, headers=headers, timeout=30) as client:
        for warehouse in WAREHOUSES:
            _created_or_exists(client.post("/wms/v1/warehouses", json=warehouse))
        progress("warehouses")
        for sku, name, price in ITEMS:
            body = {
                "sku": sku,
                "name": name,
                "unit_price": {"amount_minor": price, "currency": "USD"},
            }
            _created_or_exists(client.post("/erp/v1/items", json=body))
        progress("items")
        for customer in CUSTOMERS:
            _created_or_exists(client.post("/erp/v1/customers", json=customer))
        progress("customers")
        for warehouse_id, quantity in STOCK.items():
            receipt: dict[str, object] = {
                "warehouse_id": warehouse_id,
                "lines": [{"sku": sku, "quantity": quantity} for sku, _, _ in ITEMS],
            }
            response = client.post(
                "/wms/v1/receipts",
                json=receipt,
                headers={"Idempotency-Key": f"seed-receipt-{warehouse_id}"},
            )
            _created_or_exists(response)
        progress("stock")
