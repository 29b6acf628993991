"""Return receipts and scrap book the financial inventory like the other warehouse facts:
a return receipt adds stock, scrap removes it, and a line of the wrong sign posts nothing."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import TestClient

from tests.erp.test_financial_inventory import on_hand, posting
from tests.support.problems import assert_problem
from tests.support.service import post


def test_return_receipt_adds_and_scrap_removes(client: TestClient[Any]) -> None:
    assert (
        post(
            client,
            "/erp/v1/inventory/postings",
            posting("goods_receipt", "RCV-1", [("A", 10)]),
            key="k1",
        ).status_code
        == 201
    )
    returned = post(
        client,
        "/erp/v1/inventory/postings",
        posting("return_receipt", "RET-1", [("A", 2)]),
        key="k2",
    )
    assert returned.status_code == 201, returned.text
    assert returned.json()["kind"] == "return_receipt"
    scrapped = post(
        client, "/erp/v1/inventory/postings", posting("scrap", "SCR-1", [("A", -3)]), key="k3"
    )
    assert scrapped.status_code == 201, scrapped.text
    assert on_hand(client, "A") == {"WH1": 9}
    # One posting per document and kind: the same scrap again is refused.
    again = post(
        client, "/erp/v1/inventory/postings", posting("scrap", "SCR-1", [("A", -3)]), key="k4"
    )
    assert_problem(again, 409, "duplicate-posting")
    assert on_hand(client, "A") == {"WH1": 9}


@pytest.mark.parametrize(
    ("kind", "delta"),
    [("return_receipt", -1), ("return_receipt", 0), ("scrap", 1), ("scrap", 0)],
)
def test_a_line_of_the_wrong_sign_posts_nothing(
    client: TestClient[Any], kind: str, delta: int
) -> None:
    assert (
        post(
            client,
            "/erp/v1/inventory/postings",
            posting("goods_receipt", "RCV-1", [("A", 5)]),
            key="k1",
        ).status_code
        == 201
    )
    refused = post(
        client,
        "/erp/v1/inventory/postings",
        posting(kind, "DOC-1", [("B", 1), ("A", delta)]),
        key="k2",
    )
    assert_problem(refused, 422, "invalid-quantity")
    assert on_hand(client, "A") == {"WH1": 5}
    assert on_hand(client, "B") == {}
    # Nothing was recorded for the document: the corrected posting goes through.
    fixed = posting(kind, "DOC-1", [("B", 1 if kind == "return_receipt" else -1)])
    assert post(client, "/erp/v1/inventory/postings", fixed, key="k3").status_code == 201
