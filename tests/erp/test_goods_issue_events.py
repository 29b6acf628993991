"""A goods issue booked in the ERP is announced on ``tally.erp`` as ``goods_issue.posted``
(the order it ships, the units issued per sku): billing invoices the shipment on it.
Only a goods issue may name an order, and a replayed posting announces nothing again."""

from __future__ import annotations

from typing import Any

from litestar.testing import TestClient

from shared.events.catalog import GoodsIssuePosted
from shared.settings import Settings
from tests.erp.test_financial_inventory import posting
from tests.erp.test_posting_batch import BATCH, SINGLE, item, posted, refused
from tests.erp.test_purchasing import events
from tests.support.problems import assert_problem
from tests.support.service import post
from tests.wms.helpers import outbox_count


def issue(reference: str, lines: list[tuple[str, int]], order_id: str | None) -> dict[str, Any]:
    body = posting("goods_issue", reference, lines)
    if order_id is not None:
        body["order_id"] = order_id
    return body


def announced(settings: Settings, count: int) -> dict[str, GoodsIssuePosted]:
    found = [e for e in events(settings, count) if e.type == "goods_issue.posted"]
    return {e.subject: e.payload(GoodsIssuePosted) for e in found}


def test_a_goods_issue_is_announced_with_its_order_once(
    client: TestClient[Any], settings: Settings
) -> None:
    stocked = post(
        client, SINGLE, posting("goods_receipt", "RCV-GI", [("A", 9), ("B", 9)]), key="r1"
    )
    assert stocked.status_code == 201, stocked.text
    body = issue("SHP-1", [("A", -2), ("B", -3), ("A", -1)], "ORD-1")
    first = post(client, SINGLE, body, key="gi-1")
    assert first.status_code == 201, first.text
    assert first.json()["order_id"] == "ORD-1"
    # The same request again (a retry) replays the posting and announces nothing new.
    again = post(client, SINGLE, body, key="gi-1")
    assert (again.status_code, again.json()) == (201, first.json())
    # A goods issue naming no order (another integration's) is announced without one.
    plain = post(client, SINGLE, issue("SHP-2", [("B", -1)], None), key="gi-2")
    assert plain.status_code == 201, plain.text
    by_subject = announced(settings, 2)
    assert set(by_subject) == {"goods_issue:SHP-1", "goods_issue:SHP-2"}
    one = by_subject["goods_issue:SHP-1"]
    assert (one.shipment_id, one.order_id, one.warehouse_id) == ("SHP-1", "ORD-1", "WH1")
    assert one.posting_id == first.json()["posting_id"]
    assert sorted((line.sku, line.quantity) for line in one.lines) == [
        ("A", 1),
        ("A", 2),
        ("B", 3),
    ]
    assert by_subject["goods_issue:SHP-2"].order_id is None


def test_only_a_goods_issue_names_an_order(client: TestClient[Any], settings: Settings) -> None:
    before = outbox_count(settings)
    body = posting("goods_receipt", "RCV-ORD", [("A", 5)])
    body["order_id"] = "ORD-2"
    refused_single = post(client, SINGLE, body, key="gr-ord")
    assert_problem(refused_single, 422, "invalid-posting")
    answer = client.post(BATCH, json={"postings": [item("gr-ord-b", body)]})
    assert answer.status_code == 200, answer.text
    refused(answer.json()["results"][0], 422, "invalid-posting")
    assert outbox_count(settings) == before


def test_a_batch_announces_each_goods_issue_it_books(
    client: TestClient[Any], settings: Settings
) -> None:
    answer = client.post(
        BATCH,
        json={
            "postings": [
                item("b-1", issue("SHP-B1", [("A", -1)], "ORD-B1")),
                item("b-2", issue("SHP-B2", [("A", -2)], "ORD-B2")),
                item("b-3", posting("adjustment", "ADJ-B3", [("A", 4)])),
            ]
        },
    )
    assert answer.status_code == 200, answer.text
    assert [posted(r)["kind"] for r in answer.json()["results"]] == [
        "goods_issue",
        "goods_issue",
        "adjustment",
    ]
    by_subject = announced(settings, 2)
    assert {s: p.order_id for s, p in by_subject.items()} == {
        "goods_issue:SHP-B1": "ORD-B1",
        "goods_issue:SHP-B2": "ORD-B2",
    }
