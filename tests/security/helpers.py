"""Helpers of the security suite: tenants, OAuth clients registered with the operator's
CLI, and small calls through the gateway."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from tests.support.platform import PlatformClient
from tests.support.polling import eventually, wait_until

PRICE = 1250
# What a customer portal's client gets: the portal and the process APIs it forwards to.
PORTAL_CLIENT_SCOPES = "portal orders:read orders:write billing:read inventory:read"


@dataclass(frozen=True)
class Creds:
    client_id: str
    client_secret: str


@dataclass(frozen=True)
class Tenant:
    """One customer, its bound client, and one order shipped and invoiced."""

    customer_id: str
    client: Creds
    order_id: str
    invoice_id: str
    fulfillment_order_id: str


@dataclass(frozen=True)
class World:
    sku: str
    a: Tenant
    b: Tenant


def register_client(platform: PlatformClient, scopes: str, **options: str) -> Creds:
    """`tally clients create ... --json`, the operator's path."""
    args = [
        sys.executable,
        "-m",
        "tally",
        "clients",
        "create",
        "--name",
        f"security-{uuid.uuid4().hex[:6]}",
        "--scopes",
        scopes,
        "--json",
        "--data-dir",
        str(platform.platform.data_dir),
    ]
    for name, value in options.items():
        args += [f"--{name}", value]
    done = subprocess.run(args, capture_output=True, text=True, check=True, timeout=60)
    created = json.loads(done.stdout)
    return Creds(created["client_id"], created["client_secret"])


def bearer(platform: PlatformClient, creds: Creds) -> str:
    return platform.token(creds.client_id, creds.client_secret)


def atp(api: httpx.Client, sku: str) -> int:
    response = api.get(f"/availability/v1/items/{sku}")
    assert response.status_code == 200, response.text
    return int(response.json()["available_to_promise"])


def place(api: httpx.Client, customer_id: str, sku: str, quantity: int = 2) -> str:
    body = {
        "customer_id": customer_id,
        "channel": "b2b_portal",
        "lines": [{"sku": sku, "quantity": quantity}],
    }
    placed = api.post("/orders/v1/orders", json=body, headers={"Idempotency-Key": uuid.uuid4().hex})
    assert placed.status_code == 201, placed.text
    order_id = str(placed.json()["order_id"])
    # Accepted at once, released to the warehouse by the queue: wait for the release so
    # that the world a test compares before and after stands still.
    wait_until(
        lambda: api.get(f"/orders/v1/orders/{order_id}").json()["releases_pending"] == 0,
        what=f"order {order_id} released",
    )
    return order_id


def shipped_and_invoiced(api: httpx.Client, customer_id: str, sku: str) -> tuple[str, str, str]:
    order_id = place(api, customer_id, sku)
    found = api.get("/wms/v1/fulfillment-orders", params={"order_id": order_id}).json()["items"]
    (fo,) = found
    shipment = {
        "carrier": "UPS",
        "tracking_number": f"1Z{uuid.uuid4().hex[:10]}",
        "lines": [{"sku": sku, "quantity": 2}],
    }
    shipped = api.post(
        f"/wms/v1/fulfillment-orders/{fo['fulfillment_order_id']}/shipments",
        json=shipment,
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    assert shipped.status_code == 201, shipped.text

    def invoices() -> list[Any]:
        listed = api.get("/billing/v1/invoices", params={"order_id": order_id})
        items: list[Any] = listed.json()["items"]
        return items

    invoiced = eventually(invoices, timeout=30)
    assert invoiced, f"no invoice for {order_id}"
    return order_id, invoiced[0]["invoice_id"], fo["fulfillment_order_id"]
