from __future__ import annotations

from typing import Any

from litestar.testing import TestClient

from tests.support.service import post


def posting(
    kind: str, reference: str, lines: list[tuple[str, int]], wh: str = "WH1"
) -> dict[str, Any]:
    return {
        "kind": kind,
        "reference": reference,
        "warehouse_id": wh,
        "lines": [{"sku": sku, "quantity_delta": q} for sku, q in lines],
    }


def on_hand(client: TestClient[Any], sku: str) -> dict[str, int]:
    response = client.get(f"/erp/v1/inventory/{sku}")
    assert response.status_code == 200, response.text
    return {x["warehouse_id"]: x["on_hand"] for x in response.json()["items"]}


def test_financial_on_hand_moves_only_by_postings(client: TestClient[Any]) -> None:
    assert on_hand(client, "A") == {}
    assert (
        post(
            client,
            "/erp/v1/inventory/postings",
            posting("goods_receipt", "RCV-1", [("A", 10)]),
            key="p1",
        ).status_code
        == 201
    )
    assert (
        post(
            client,
            "/erp/v1/inventory/postings",
            posting("goods_receipt", "RCV-2", [("A", 5)], "WH2"),
            key="p2",
        ).status_code
        == 201
    )
    assert (
        post(
            client,
            "/erp/v1/inventory/postings",
            posting("goods_issue", "SHP-1", [("A", -3)]),
            key="p3",
        ).status_code
        == 201
    )
    assert (
        post(
            client,
            "/erp/v1/inventory/postings",
            posting("adjustment", "ADJ-1", [("A", -1)]),
            key="p4",
        ).status_code
        == 201
    )
    assert on_hand(client, "A") == {"WH1": 6, "WH2": 5}

    # One posting per warehouse document: a second goods issue of SHP-1 is refused.
    again = post(
        client, "/erp/v1/inventory/postings", posting("goods_issue", "SHP-1", [("A", -3)]), key="p5"
    )
    assert again.status_code == 409
    assert again.json()["type"] == "/problems/duplicate-posting"
    # The sign must fit the kind; zero never posts.
    wrong_sign = post(
        client, "/erp/v1/inventory/postings", posting("goods_issue", "SHP-2", [("A", 3)]), key="p6"
    )
    assert wrong_sign.status_code == 422
    zero = post(
        client, "/erp/v1/inventory/postings", posting("adjustment", "ADJ-2", [("A", 0)]), key="p7"
    )
    assert zero.status_code == 422
    assert on_hand(client, "A") == {"WH1": 6, "WH2": 5}
    replay = post(
        client, "/erp/v1/inventory/postings", posting("goods_issue", "SHP-1", [("A", -3)]), key="p3"
    )
    assert replay.headers["Idempotent-Replayed"] == "true"

    page = client.get("/erp/v1/inventory", params={"limit": 1})
    assert page.status_code == 200
    first = page.json()
    assert [(x["sku"], x["warehouse_id"]) for x in first["items"]] == [("A", "WH1")]
    second = client.get(
        "/erp/v1/inventory", params={"limit": 1, "cursor": first["next_cursor"]}
    ).json()
    assert [(x["sku"], x["warehouse_id"]) for x in second["items"]] == [("A", "WH2")]
    assert second["next_cursor"] is None
    only_wh2 = client.get("/erp/v1/inventory", params={"warehouse_id": "WH2"}).json()["items"]
    assert [x["on_hand"] for x in only_wh2] == [5]


def test_receipt_against_a_purchase_order_receives_its_open_lines(client: TestClient[Any]) -> None:
    po = post(
        client,
        "/erp/v1/purchase-orders",
        {"supplier_id": "SUP-1", "lines": [{"sku": "A", "warehouse_id": "WH1", "quantity": 4}]},
        key="po",
    ).json()
    body = posting("goods_receipt", "RCV-9", [("A", 6)]) | {
        "purchase_order_id": po["purchase_order_id"]
    }
    assert post(client, "/erp/v1/inventory/postings", body, key="gr").status_code == 201
    after = client.get(f"/erp/v1/purchase-orders/{po['purchase_order_id']}").json()
    assert after["status"] == "closed"
    assert (after["lines"][0]["received"], after["lines"][0]["open_quantity"]) == (4, 0)
    assert on_hand(client, "A") == {"WH1": 6}
