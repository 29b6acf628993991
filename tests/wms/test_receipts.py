from __future__ import annotations

from typing import Any

from litestar.testing import TestClient

from shared.events.catalog import ReceiptPosted
from shared.settings import Settings
from tests.support.events import bus_events
from tests.support.polling import eventually
from tests.wms.helpers import add_warehouse, outbox_count, receive, stock_of


def test_receipt_raises_stock_and_publishes_one_event(
    client: TestClient[Any], settings: Settings
) -> None:
    add_warehouse(client)
    receipt = receive(
        client,
        [{"sku": "SKU-1", "quantity": 7}, {"sku": "SKU-1", "quantity": 3, "lot": "L1"}],
        key="rcv-1",
    )

    assert receipt["receipt_id"].startswith("RCV-")
    assert receipt["warehouse_id"] == "WH1"
    assert stock_of(client, "SKU-1") == {("WH1", None): 7, ("WH1", "L1"): 3}
    assert outbox_count(settings) == 1

    events = eventually(lambda: bus_events(settings))
    assert [e.type for e in events] == ["receipt.posted"]
    event = events[0]
    assert event.source == "tally.wms"
    assert event.subject == "warehouse:WH1"  # an event of the warehouse's stock
    assert event.sequence == 1  # its stock version after the receipt
    payload = event.payload(ReceiptPosted)
    assert payload.warehouse_id == "WH1"
    assert [(line.sku, line.quantity, line.lot) for line in payload.lines] == [
        ("SKU-1", 7, None),
        ("SKU-1", 3, "L1"),
    ]
    assert client.get(f"/wms/v1/receipts/{receipt['receipt_id']}").json() == receipt


def test_receipts_add_up_per_warehouse_and_lot(client: TestClient[Any]) -> None:
    add_warehouse(client, "WH1")
    add_warehouse(client, "WH2")
    receive(client, [{"sku": "SKU-1", "quantity": 4}], key="a")
    receive(client, [{"sku": "SKU-1", "quantity": 5}], key="b")
    receive(client, [{"sku": "SKU-1", "quantity": 2}], warehouse_id="WH2", key="c")

    assert stock_of(client, "SKU-1") == {("WH1", None): 9, ("WH2", None): 2}


def test_each_warehouse_numbers_its_stock_changes(
    client: TestClient[Any], settings: Settings
) -> None:
    add_warehouse(client, "WH1")
    add_warehouse(client, "WH2")
    receive(client, [{"sku": "SKU-1", "quantity": 4}], key="a")
    receive(client, [{"sku": "SKU-1", "quantity": 2}], warehouse_id="WH2", key="b")
    receive(client, [{"sku": "SKU-1", "quantity": 5}], key="c")
    # A refused receipt raises no version (its transaction rolls back).
    refused = client.post(
        "/wms/v1/receipts",
        json={"warehouse_id": "NOPE", "lines": [{"sku": "SKU-1", "quantity": 1}]},
        headers={"Idempotency-Key": "d"},
    )
    assert refused.status_code == 422
    receive(client, [{"sku": "SKU-1", "quantity": 1}], warehouse_id="WH2", key="e")

    eventually(lambda: len(bus_events(settings)) == 4)
    events = bus_events(settings)
    assert [(e.subject, e.sequence) for e in events] == [
        ("warehouse:WH1", 1),
        ("warehouse:WH2", 1),
        ("warehouse:WH1", 2),
        ("warehouse:WH2", 2),
    ]


def test_receipt_replay_returns_the_same_answer_and_changes_nothing(
    client: TestClient[Any], settings: Settings
) -> None:
    add_warehouse(client)
    body = {"warehouse_id": "WH1", "lines": [{"sku": "SKU-1", "quantity": 5}]}
    first = client.post("/wms/v1/receipts", json=body, headers={"Idempotency-Key": "k1"})
    again = client.post("/wms/v1/receipts", json=body, headers={"Idempotency-Key": "k1"})

    assert first.status_code == again.status_code == 201
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert again.json() == first.json()
    assert stock_of(client, "SKU-1") == {("WH1", None): 5}
    assert outbox_count(settings) == 1


def test_same_key_with_another_body_is_422_and_changes_nothing(
    client: TestClient[Any], settings: Settings
) -> None:
    add_warehouse(client)
    receive(client, [{"sku": "SKU-1", "quantity": 5}], key="k1")
    other = client.post(
        "/wms/v1/receipts",
        json={"warehouse_id": "WH1", "lines": [{"sku": "SKU-1", "quantity": 6}]},
        headers={"Idempotency-Key": "k1"},
    )

    assert other.status_code == 422
    assert other.headers["content-type"].startswith("application/problem+json")
    assert other.json()["type"] == "/problems/idempotency-key-reused"
    assert stock_of(client, "SKU-1") == {("WH1", None): 5}
    assert outbox_count(settings) == 1


def test_receipt_into_unknown_warehouse_is_422_and_writes_nothing(
    client: TestClient[Any], settings: Settings
) -> None:
    response = client.post(
        "/wms/v1/receipts",
        json={"warehouse_id": "NOPE", "lines": [{"sku": "SKU-1", "quantity": 5}]},
        headers={"Idempotency-Key": "k1"},
    )

    assert response.status_code == 422
    assert response.json()["type"] == "/problems/unknown-warehouse"
    assert stock_of(client, "SKU-1") == {}
    assert outbox_count(settings) == 0


def test_receipt_requires_an_idempotency_key(client: TestClient[Any]) -> None:
    add_warehouse(client)
    response = client.post(
        "/wms/v1/receipts",
        json={"warehouse_id": "WH1", "lines": [{"sku": "SKU-1", "quantity": 5}]},
    )

    assert response.status_code == 400
    assert stock_of(client, "SKU-1") == {}


def test_receipt_rejects_unknown_fields_and_bad_quantities(client: TestClient[Any]) -> None:
    add_warehouse(client)
    for lines in (
        [{"sku": "SKU-1", "quantity": 0}],
        [{"sku": "SKU-1", "quantity": 1, "colour": "red"}],
        [],
    ):
        response = client.post(
            "/wms/v1/receipts",
            json={"warehouse_id": "WH1", "lines": lines},
            headers={"Idempotency-Key": "bad"},
        )
        assert response.status_code == 400, lines
        assert response.json()["type"] == "/problems/invalid-request"
