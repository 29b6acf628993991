"""The day's world, made through the gateway as an operator would: items with list
prices, the customers (one with a credit limit that holds its orders), the opening
stock received at the warehouses, and an OAuth client per customer (bound to it, in its
channel's rate tier) registered in the gateway's client registry."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path

from tally.simulate.api import Credentials, Party
from tally.simulate.plan import TIERS, WAREHOUSES, Day

CHANNEL_SCOPES = (
    "orders:read orders:write billing:read billing:write inventory:read inventory:write portal"
)


@dataclass(frozen=True)
class World:
    staff: Party
    parties: dict[str, Party]  # customer id -> its client's session


def register_clients(data_dir: Path, day: Day) -> dict[str, Credentials]:
    """One client per customer, bound to it (the registry of the gateway's data dir)."""
    from gateway.clients.registry import ClientRegistry
    from shared.settings import database_url_for

    registry = ClientRegistry(database_url_for("gateway", data_dir))
    try:
        made = {}
        for customer in day.customers:
            client_id, secret = registry.create(
                f"simulate {customer.customer_id}",
                CHANNEL_SCOPES,
                customer_id=customer.customer_id,
                tier=TIERS[customer.channel],
            )
            made[customer.customer_id] = Credentials(client_id, secret)
        return made
    finally:
        registry.close()


def staff_credentials(data_dir: Path) -> Credentials:
    from tally.bootstrap import secrets_path

    demo = json.loads(secrets_path(data_dir).read_text())["demo"]
    return Credentials(demo["client_id"], demo["client_secret"])


async def build(staff: Party, day: Day) -> None:
    """Everything the day needs before the first order; idempotent (a rerun of a seed
    and tag changes nothing)."""
    for warehouse_id in WAREHOUSES:
        body = {"warehouse_id": warehouse_id, "name": warehouse_id, "region": "sim"}
        _ok(await staff.post("/wms/v1/warehouses", body), 201, 409)
    await _each(
        [
            staff.post(
                "/erp/v1/items",
                {
                    "sku": item.sku,
                    "name": item.name,
                    "unit_price": {"amount_minor": item.price_minor, "currency": "USD"},
                },
            )
            for item in day.items
        ]
    )
    await _each(
        [
            staff.post(
                "/erp/v1/customers",
                {
                    "customer_id": c.customer_id,
                    "name": f"Simulated {c.channel} customer",
                    "credit_limit": {"amount_minor": c.credit_limit_minor, "currency": "USD"},
                },
            )
            for c in day.customers
        ]
    )
    for warehouse_id, stock in day.opening_stock.items():
        skus = sorted(stock)
        for start in range(0, len(skus), 400):
            chunk = skus[start : start + 400]
            receipt = {
                "warehouse_id": warehouse_id,
                "lines": [{"sku": sku, "quantity": stock[sku]} for sku in chunk if stock[sku]],
            }
            if receipt["lines"]:
                key = f"sim-{day.tag}-opening-{warehouse_id}-{start}"
                _ok(await staff.post("/wms/v1/receipts", receipt, key=key), 201)


async def _each(calls: list[object], at_once: int = 16) -> None:
    gate = asyncio.Semaphore(at_once)

    async def one(call: object) -> None:
        async with gate:
            _ok(await call, 201, 409)  # type: ignore[misc]

    await asyncio.gather(*(one(c) for c in calls))


def _ok(answer: object, *statuses: int) -> None:
    code = getattr(answer, "status_code", None)
    if code not in statuses:
        raise RuntimeError(f"setup refused ({code}): {getattr(answer, 'text', '')[:300]}")
