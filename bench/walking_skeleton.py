"""How long `tally up` takes to be ready, and how fast one order travels end to end.

    .venv/bin/python -m bench.walking_skeleton [--orders 50] [--json results.json]

Prints: time until every service answers /readyz (and with first-start seeding), the
latency of POST /orders/v1/orders through the gateway (p50/p99), and the time from a
shipment to its invoice being visible in billing (p50/p99): the event path.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from tally.launcher import launch
from tests.support.platform import PlatformClient
from tests.support.polling import eventually
from tests.support.ports import free_ports


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(orders: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        started = time.monotonic()
        launched = launch(Path(tmp), ports=free_ports())
        ready_seconds = time.monotonic() - started
        try:
            platform = PlatformClient(launched)
            with platform.client() as api:
                sku, customer = f"BENCH-{uuid.uuid4().hex[:6]}", "CUST-ACME"
                api.post(
                    "/erp/v1/items",
                    json={
                        "sku": sku,
                        "name": "bench",
                        "unit_price": {"amount_minor": 100, "currency": "USD"},
                    },
                )
                api.post(
                    "/wms/v1/receipts",
                    json={
                        "warehouse_id": "WH-EAST",
                        "lines": [{"sku": sku, "quantity": orders * 2}],
                    },
                    headers={"Idempotency-Key": f"bench-{sku}"},
                )
                eventually(
                    lambda: (
                        api.get(f"/availability/v1/items/{sku}").json()["available_to_promise"]
                        == orders * 2
                    )
                )
                place, invoice = [], []
                for n in range(orders):
                    t0 = time.perf_counter()
                    response = api.post(
                        "/orders/v1/orders",
                        json={
                            "customer_id": customer,
                            "channel": "ecommerce",
                            "lines": [{"sku": sku, "quantity": 1}],
                        },
                        headers={"Idempotency-Key": f"bench-{sku}-{n}"},
                    )
                    place.append(time.perf_counter() - t0)
                    order_id = response.json()["order_id"]
                    fo = api.get(
                        "/wms/v1/fulfillment-orders", params={"order_id": order_id}
                    ).json()["items"][0]
                    api.post(
                        f"/wms/v1/fulfillment-orders/{fo['fulfillment_order_id']}/shipments",
                        json={
                            "carrier": "UPS",
                            "tracking_number": f"T{n}",
                            "lines": [
                                {"sku": ln["sku"], "quantity": ln["quantity"]} for ln in fo["lines"]
                            ],
                        },
                        headers={"Idempotency-Key": f"bench-ship-{order_id}"},
                    )
                    t1 = time.perf_counter()
                    eventually(
                        lambda oid=order_id: api.get(
                            "/billing/v1/invoices", params={"order_id": oid}
                        ).json()["items"],
                        interval=0.005,
                    )
                    invoice.append(time.perf_counter() - t1)
        finally:
            launched.platform.stop()
    return {
        "ready_seconds_with_seed": round(ready_seconds, 2),
        "orders": orders,
        "place_order_p50_ms": round(statistics.median(place) * 1000, 1),
        "place_order_p99_ms": round(_percentile(place, 0.99) * 1000, 1),
        "shipment_to_invoice_p50_ms": round(statistics.median(invoice) * 1000, 1),
        "shipment_to_invoice_p99_ms": round(_percentile(invoice, 0.99) * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=50)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    figures = run(args.orders)
    for name, value in figures.items():
        print(f"{name:32} {value}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
