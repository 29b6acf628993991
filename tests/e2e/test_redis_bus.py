"""`tally up --bus redis://...`: the whole platform on Redis Streams (the code path of
`tally up`, every service its own process), one order from placement to invoice, then
the operator's view of the bus: `tally events lag` and each consumer's /metrics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tally.launcher import launch
from tests.support.platform import PlatformClient
from tests.support.polling import eventually
from tests.support.ports import free_ports

pytestmark = [pytest.mark.redis, pytest.mark.timeout(240)]

PRICE = 1250
STREAM = "tally.wms"
CONSUMER_GROUPS = ("availability", "billing", "order_to_ship")
GAUGES = ("tally_events_pending", "tally_events_lag", "tally_events_oldest_pending_seconds")
REDIS_DB = 13  # its own database of the session's server, flushed first


@pytest.fixture(scope="module")
def bus_url(redis_url: str) -> str:
    url = f"{redis_url.rsplit('/', 1)[0]}/{REDIS_DB}"
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()
    return url


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("redis-platform")


@pytest.fixture(scope="module")
def on_redis(data_dir: Path, bus_url: str) -> Iterator[PlatformClient]:
    launched = launch(data_dir, ports=free_ports(), extra_env={"TALLY_BUS_URL": bus_url})
    try:
        yield PlatformClient(launched)
    finally:
        launched.platform.stop()


def _atp(api: httpx.Client, sku: str) -> int:
    return int(api.get(f"/availability/v1/items/{sku}").json()["available_to_promise"])


def _events_lag(bus_url: str, data_dir: Path) -> list[dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALLY_")}
    done = subprocess.run(
        [sys.executable, "-m", "tally", "events", "lag", "--json", "--bus", bus_url],
        env=env | {"TALLY_DATA_DIR": str(data_dir)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    items: list[dict[str, Any]] = json.loads(done.stdout)["items"]
    return items


def _gauges(metrics_text: str, group: str) -> dict[str, float]:
    """The bus gauges of ``group`` on the WMS stream, from a Prometheus text page."""
    found: dict[str, float] = {}
    for line in metrics_text.splitlines():
        name, _, rest = line.partition("{")
        if name in GAUGES and f'group="{group}"' in rest and f'stream="{STREAM}"' in rest:
            found[name] = float(rest.rsplit(" ", 1)[1])
    return found


def test_an_order_travels_to_its_invoice_on_redis_streams(
    on_redis: PlatformClient, bus_url: str, data_dir: Path
) -> None:
    sku, customer = f"RDS-{uuid.uuid4().hex[:8]}", f"CUST-{uuid.uuid4().hex[:8]}"
    with on_redis.client() as api:
        item = {
            "sku": sku,
            "name": "Redis item",
            "unit_price": {"amount_minor": PRICE, "currency": "USD"},
        }
        assert api.post("/erp/v1/items", json=item).status_code == 201
        account = {
            "customer_id": customer,
            "name": "Redis E2E",
            "credit_limit": {"amount_minor": 10**9, "currency": "USD"},
        }
        assert api.post("/erp/v1/customers", json=account).status_code == 201
        receipt = {"warehouse_id": "WH-EAST", "lines": [{"sku": sku, "quantity": 5}]}
        received = api.post(
            "/wms/v1/receipts", json=receipt, headers={"Idempotency-Key": f"rcv-{sku}"}
        )
        assert received.status_code == 201, received.text
        assert eventually(lambda: _atp(api, sku) == 5), "the receipt never reached availability"

        order = {"customer_id": customer, "channel": "edi", "lines": [{"sku": sku, "quantity": 2}]}
        placed = api.post("/orders/v1/orders", json=order, headers={"Idempotency-Key": sku})
        assert placed.status_code == 201, placed.text
        order_id = placed.json()["order_id"]
        # Accepted at once; the release queue sends it to the warehouse a moment later.
        assert eventually(
            lambda: api.get(f"/orders/v1/orders/{order_id}").json()["status"] == "released"
        ), "the order never reached the warehouse"
        fulfillment = api.get("/wms/v1/fulfillment-orders", params={"order_id": order_id})
        for fo in fulfillment.json()["items"]:
            shipment = {
                "carrier": "DHL",
                "tracking_number": f"JD{fo['fulfillment_order_id'][-8:]}",
                "lines": [{"sku": ln["sku"], "quantity": ln["quantity"]} for ln in fo["lines"]],
            }
            shipped = api.post(
                f"/wms/v1/fulfillment-orders/{fo['fulfillment_order_id']}/shipments",
                json=shipment,
                headers={"Idempotency-Key": f"ship-{fo['fulfillment_order_id']}"},
            )
            assert shipped.status_code == 201, shipped.text

        def status() -> str:
            return str(api.get(f"/orders/v1/orders/{order_id}").json()["status"])

        assert eventually(lambda: status() == "shipped"), status()

        def invoices() -> list[dict[str, Any]]:
            found = api.get("/billing/v1/invoices", params={"order_id": order_id})
            return list(found.json()["items"])

        issued = eventually(invoices)
        assert issued, "no invoice was issued"
        assert sum(i["subtotal"]["amount_minor"] for i in issued) == 2 * PRICE  # net of tax

    # Every event went through Redis: no embedded log was created.
    assert not (data_dir / "events.db").exists()
    client = redis.Redis.from_url(bus_url)
    try:
        assert client.xlen(STREAM) > 0
    finally:
        client.close()

    # The operator's view: each consuming service's group on the WMS stream, caught up.
    def caught_up() -> list[dict[str, Any]]:
        rows = [r for r in _events_lag(bus_url, data_dir) if r["stream"] == STREAM]
        settled = {r["group"] for r in rows if r["pending"] == 0 and r["lag"] == 0}
        return rows if settled >= set(CONSUMER_GROUPS) else []

    rows = eventually(caught_up, timeout=30, interval=0.5)
    assert rows, _events_lag(bus_url, data_dir)
    assert all(r["oldest_pending_seconds"] == 0 for r in rows if r["group"] in CONSUMER_GROUPS)

    # The same numbers on each consumer's /metrics (refreshed every few seconds).
    for group in CONSUMER_GROUPS:

        def exposed(group: str = group) -> dict[str, float]:
            page = httpx.get(f"{on_redis.url(group)}/metrics", timeout=10).text
            gauges = _gauges(page, group)
            return gauges if gauges == dict.fromkeys(GAUGES, 0.0) else {}

        assert eventually(exposed, timeout=30, interval=0.5), (
            group,
            _gauges(httpx.get(f"{on_redis.url(group)}/metrics", timeout=10).text, group),
        )
