"""A receipt names the ASN and purchase order it fulfils (ERP ids the WMS only keeps):
echoed on the receipt and carried on receipt.posted for the ERP posting."""

from __future__ import annotations

from typing import Any

from litestar.testing import TestClient

from shared.events.catalog import ReceiptPosted
from shared.settings import Settings
from tests.support.service import post
from tests.wms.helpers import add_warehouse, events_of


def test_a_receipt_carries_its_asn_and_purchase_order(
    client: TestClient[Any], settings: Settings
) -> None:
    add_warehouse(client)
    body = {
        "warehouse_id": "WH1",
        "lines": [{"sku": "A", "quantity": 4}],
        "asn_id": "ASN-7",
        "purchase_order_id": "PO-3",
    }
    posted = post(client, "/wms/v1/receipts", body, key="rcv-1")
    assert posted.status_code == 201, posted.text
    receipt = posted.json()
    assert (receipt["asn_id"], receipt["purchase_order_id"]) == ("ASN-7", "PO-3")
    read = client.get(f"/wms/v1/receipts/{receipt['receipt_id']}")
    assert read.json() == receipt
    replayed = post(client, "/wms/v1/receipts", body, key="rcv-1")
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.json() == receipt

    plain = post(
        client,
        "/wms/v1/receipts",
        {"warehouse_id": "WH1", "lines": [{"sku": "A", "quantity": 1}]},
        key="rcv-2",
    )
    assert (plain.json()["asn_id"], plain.json()["purchase_order_id"]) == (None, None)

    first, second = (e.payload(ReceiptPosted) for e in events_of(settings, "receipt.posted", 2))
    assert (first.receipt_id, first.asn_id, first.purchase_order_id) == (
        receipt["receipt_id"],
        "ASN-7",
        "PO-3",
    )
    assert (second.asn_id, second.purchase_order_id) == (None, None)


def test_a_reference_that_is_no_identifier_is_refused(client: TestClient[Any]) -> None:
    add_warehouse(client)
    body = {"warehouse_id": "WH1", "lines": [{"sku": "A", "quantity": 1}], "asn_id": ""}
    assert post(client, "/wms/v1/receipts", body, key="rcv-1").status_code == 400
