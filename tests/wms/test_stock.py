from __future__ import annotations

from typing import Any

from litestar.testing import TestClient

from tests.wms.helpers import add_warehouse, receive


def test_stock_pages_through_warehouse_sku_and_lot(client: TestClient[Any]) -> None:
    add_warehouse(client, "WH1")
    add_warehouse(client, "WH2")
    receive(
        client, [{"sku": "A", "quantity": 1}, {"sku": "A", "quantity": 2, "lot": "L1"}], key="1"
    )
    receive(client, [{"sku": "B", "quantity": 3}], key="2")
    receive(client, [{"sku": "A", "quantity": 4}], warehouse_id="WH2", key="3")

    seen: list[tuple[str, str, str | None, int]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 1}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/wms/v1/stock", params=params).json()
        seen += [(s["warehouse_id"], s["sku"], s["lot"], s["on_hand"]) for s in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break

    assert seen == [
        ("WH1", "A", None, 1),
        ("WH1", "A", "L1", 2),
        ("WH1", "B", None, 3),
        ("WH2", "A", None, 4),
    ]
    in_wh2 = client.get("/wms/v1/stock", params={"warehouse_id": "WH2"}).json()["items"]
    assert [(s["sku"], s["on_hand"]) for s in in_wh2] == [("A", 4)]


def test_stock_filters_are_validated(client: TestClient[Any]) -> None:
    assert client.get("/wms/v1/stock", params={"warehouse_id": "-WH"}).status_code == 400
    assert client.get("/wms/v1/stock", params={"sku": "a b"}).status_code == 400
    assert client.get("/wms/v1/stock", params={"limit": 0}).status_code == 400
