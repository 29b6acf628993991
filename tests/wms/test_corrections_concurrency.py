"""Put-aways, shortages, picks and deliveries of one order or shipment at the same
time: each takes the order's (or the shipment's) row first, so none oversteps the line
and a shipment is delivered once, whatever the interleaving."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from litestar.testing import TestClient

from shared.settings import Settings
from tests.support.service import post
from tests.wms.helpers import add_warehouse, outbox_count, receive, release, stock_rows

WORKERS = 12


def test_concurrent_picks_and_shortages_never_overstep_the_line(
    client: TestClient[Any], settings: Settings
) -> None:
    add_warehouse(client)
    receive(client, [{"sku": "A", "quantity": 20}], key="rcv")
    fo_id = release(client, [{"sku": "A", "quantity": 6}], key="fo")["fulfillment_order_id"]

    def one(n: int) -> tuple[str, int]:
        what = "picks" if n % 2 else "shortages"
        body = {"lines": [{"sku": "A", "quantity": 1}]}
        response = post(client, f"/wms/v1/fulfillment-orders/{fo_id}/{what}", body, key=f"k{n}")
        return what, response.status_code

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        results = list(pool.map(one, range(WORKERS)))

    assert {status for _, status in results} <= {201, 409}
    picked = sum(1 for what, status in results if what == "picks" and status == 201)
    shorted = sum(1 for what, status in results if what == "shortages" and status == 201)
    assert picked + shorted == 6  # 12 asked for 6 units: exactly the line, no more
    (line,) = client.get(f"/wms/v1/fulfillment-orders/{fo_id}").json()["lines"]
    assert (line["quantity"], line["picked"]) == (6 - shorted, picked)
    row = stock_rows(client, "A")[("WH1", None)]
    assert (row["picked"], row["hold"], row["on_hand"]) == (picked, shorted, 20)


def test_concurrent_put_aways_return_no_more_than_was_picked(client: TestClient[Any]) -> None:
    add_warehouse(client)
    receive(client, [{"sku": "A", "quantity": 10}], key="rcv")
    fo_id = release(client, [{"sku": "A", "quantity": 5}], key="fo")["fulfillment_order_id"]
    body = {"lines": [{"sku": "A", "quantity": 5}]}
    assert (
        post(client, f"/wms/v1/fulfillment-orders/{fo_id}/picks", body, key="p").status_code == 201
    )

    def one(n: int) -> int:
        body = {"lines": [{"sku": "A", "quantity": 1}]}
        path = f"/wms/v1/fulfillment-orders/{fo_id}/put-aways"
        return int(post(client, path, body, key=f"u{n}").status_code)

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(one, range(8)))

    assert sorted(statuses) == [201] * 5 + [409] * 3
    row = stock_rows(client, "A")[("WH1", None)]
    assert (row["picked"], row["available"]) == (0, 10)
    assert client.get(f"/wms/v1/fulfillment-orders/{fo_id}").json()["lines"][0]["picked"] == 0


def test_concurrent_deliveries_deliver_once(client: TestClient[Any], settings: Settings) -> None:
    add_warehouse(client)
    receive(client, [{"sku": "A", "quantity": 2}], key="rcv")
    fo_id = release(client, [{"sku": "A", "quantity": 2}], key="fo")["fulfillment_order_id"]
    shipped = post(
        client,
        f"/wms/v1/fulfillment-orders/{fo_id}/shipments",
        {"carrier": "UPS", "tracking_number": "1Z1", "lines": [{"sku": "A", "quantity": 2}]},
        key="s1",
    )
    shipment_id = shipped.json()["shipment_id"]
    outbox_before = outbox_count(settings)

    def one(_: int) -> Any:
        return client.post(f"/wms/v1/shipments/{shipment_id}/delivery", json={})

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(one, range(8)))

    assert {r.status_code for r in responses} == {200}
    assert len({r.json()["delivered_at"] for r in responses}) == 1
    assert outbox_count(settings) == outbox_before + 1
