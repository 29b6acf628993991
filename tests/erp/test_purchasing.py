from __future__ import annotations

from typing import Any

from litestar.testing import TestClient

from shared.events.catalog import AsnReceived, AsnShipped, PurchaseOrderChanged
from shared.settings import Settings
from tests.support.events import bus_events
from tests.support.polling import eventually
from tests.support.service import post


def place_po(client: TestClient[Any], *, key: str = "po1") -> dict[str, Any]:
    body = {
        "supplier_id": "SUP-1",
        "lines": [
            {"sku": "A", "warehouse_id": "WH1", "quantity": 10, "expected_date": "2030-01-15"},
            {"sku": "B", "warehouse_id": "WH1", "quantity": 4},
        ],
    }
    response = post(client, "/erp/v1/purchase-orders", body, key=key)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def events(settings: Settings, count: int) -> list[Any]:
    found = eventually(
        lambda: len([e for e in bus_events(settings) if e.source == "tally.erp"]) >= count
    )
    assert found, f"{count} ERP events never reached the bus"
    return [e for e in bus_events(settings) if e.source == "tally.erp"]


def test_po_asn_and_goods_receipt_move_open_in_transit_received(
    client: TestClient[Any], settings: Settings
) -> None:
    po = place_po(client)
    po_id = po["purchase_order_id"]
    line_a = po["lines"][0]
    assert (line_a["ordered"], line_a["open_quantity"], line_a["expected_date"]) == (
        10,
        10,
        "2030-01-15",
    )

    asn = post(
        client,
        "/erp/v1/asns",
        {
            "purchase_order_id": po_id,
            "warehouse_id": "WH1",
            "expected_date": "2030-01-10",
            "lines": [{"sku": "A", "quantity": 6}],
        },
        key="asn1",
    )
    assert asn.status_code == 201, asn.text
    asn_id = asn.json()["asn_id"]
    assert asn.json()["status"] == "in_transit"
    after_asn = client.get(f"/erp/v1/purchase-orders/{po_id}").json()["lines"][0]
    assert (after_asn["open_quantity"], after_asn["in_transit"]) == (4, 6)

    receipt = post(
        client,
        "/erp/v1/inventory/postings",
        {
            "kind": "goods_receipt",
            "reference": "RCV-1",
            "warehouse_id": "WH1",
            "asn_id": asn_id,
            "lines": [{"sku": "A", "quantity_delta": 6}],
        },
        key="gr1",
    )
    assert receipt.status_code == 201, receipt.text
    line = client.get(f"/erp/v1/purchase-orders/{po_id}").json()["lines"][0]
    assert (line["open_quantity"], line["in_transit"], line["received"]) == (4, 0, 6)
    assert client.get(f"/erp/v1/asns/{asn_id}").json()["status"] == "received"

    published = events(settings, 5)
    types = [(e.type, e.subject, e.sequence) for e in published]
    assert types == [
        ("purchase_order.changed", f"purchase_order:{po_id}", 1),
        ("asn.shipped", f"asn:{asn_id}", 1),
        ("purchase_order.changed", f"purchase_order:{po_id}", 2),
        ("asn.received", f"asn:{asn_id}", 2),
        ("purchase_order.changed", f"purchase_order:{po_id}", 3),
    ]
    changed = published[2].payload(PurchaseOrderChanged)
    assert [(x.sku, x.open_quantity, x.expected_date) for x in changed.lines] == [
        ("A", 4, "2030-01-15"),
        ("B", 4, None),
    ]
    shipped = published[1].payload(AsnShipped)
    assert (shipped.expected_date, shipped.lines[0].quantity) == ("2030-01-10", 6)
    assert published[3].payload(AsnReceived).receipt_id == "RCV-1"


def test_asn_beyond_open_and_second_receipt_are_409(client: TestClient[Any]) -> None:
    po_id = place_po(client)["purchase_order_id"]
    body = {
        "purchase_order_id": po_id,
        "warehouse_id": "WH1",
        "expected_date": "2030-01-10",
        "lines": [{"sku": "B", "quantity": 5}],
    }
    too_much = post(client, "/erp/v1/asns", body, key="asn1")
    assert too_much.status_code == 409
    assert too_much.json()["type"] == "/problems/over-shipment"
    assert client.get(f"/erp/v1/purchase-orders/{po_id}").json()["lines"][1]["in_transit"] == 0
    other_wh = post(
        client,
        "/erp/v1/asns",
        body | {"warehouse_id": "WH2", "lines": [{"sku": "B", "quantity": 1}]},
        key="asn2",
    )
    assert other_wh.status_code == 409
    unknown = post(client, "/erp/v1/asns", body | {"purchase_order_id": "PO-x"}, key="asn3")
    assert unknown.status_code == 422

    cancelled = client.post(f"/erp/v1/purchase-orders/{po_id}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert [x["open_quantity"] for x in cancelled.json()["lines"]] == [0, 0]
    assert client.post(f"/erp/v1/purchase-orders/{po_id}/cancel").status_code == 409
    assert client.get("/erp/v1/purchase-orders/PO-none").status_code == 404
