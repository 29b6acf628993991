"""``POST /erp/v1/inventory/postings/batch``: up to 100 warehouse facts in one call, each
answered as the single ``POST /erp/v1/inventory/postings`` with its Idempotency-Key
would answer it."""

from __future__ import annotations

from typing import Any

from litestar.testing import TestClient

from shared.events.catalog import AsnReceived, PurchaseOrderChanged
from shared.settings import Settings
from tests.erp.test_financial_inventory import on_hand, posting
from tests.erp.test_purchasing import events, place_po
from tests.support.problems import assert_problem
from tests.support.service import post
from tests.support.tokens import TestIssuer
from tests.wms.helpers import outbox_count

BATCH = "/erp/v1/inventory/postings/batch"
SINGLE = "/erp/v1/inventory/postings"


def item(key: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"idempotency_key": key, "posting": body}


def send(client: TestClient[Any], *items: dict[str, Any]) -> list[dict[str, Any]]:
    response = client.post(BATCH, json={"postings": list(items)})
    assert response.status_code == 200, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    assert [r["idempotency_key"] for r in results] == [i["idempotency_key"] for i in items]
    return results


def posted(result: dict[str, Any]) -> dict[str, Any]:
    assert result["refusal"] is None, result
    booked: dict[str, Any] = result["posting"]
    return booked


def refused(result: dict[str, Any], status: int, slug: str) -> None:
    assert result["posting"] is None, result
    assert result["refusal"]["status"] == status, result
    assert result["refusal"]["type"] == f"/problems/{slug}", result


def ship_asn(client: TestClient[Any], po_id: str, quantity: int, *, key: str) -> str:
    body = {
        "purchase_order_id": po_id,
        "warehouse_id": "WH1",
        "expected_date": "2030-01-10",
        "lines": [{"sku": "A", "quantity": quantity}],
    }
    response = post(client, "/erp/v1/asns", body, key=key)
    assert response.status_code == 201, response.text
    asn_id: str = response.json()["asn_id"]
    return asn_id


def test_a_batch_posts_each_fact_as_its_single_post_would(
    client: TestClient[Any], settings: Settings
) -> None:
    po_id = place_po(client)["purchase_order_id"]
    asn_id = ship_asn(client, po_id, 6, key="asn1")
    events(settings, 3)  # purchase_order.changed, asn.shipped, purchase_order.changed
    results = send(
        client,
        item("p1", posting("goods_receipt", "RCV-1", [("A", 6)]) | {"asn_id": asn_id}),
        item("p2", posting("goods_receipt", "RCV-2", [("A", 5)], "WH2")),
        item("p3", posting("goods_issue", "SHP-1", [("A", -3)])),
        item("p4", posting("adjustment", "ADJ-1", [("B", 2), ("A", -1)])),
        item("p5", posting("goods_receipt", "RCV-3", [("B", 4)]) | {"purchase_order_id": po_id}),
    )
    booked = [posted(r) for r in results]
    assert len({b["posting_id"] for b in booked}) == 5
    assert [(b["kind"], b["reference"], b["warehouse_id"]) for b in booked] == [
        ("goods_receipt", "RCV-1", "WH1"),
        ("goods_receipt", "RCV-2", "WH2"),
        ("goods_issue", "SHP-1", "WH1"),
        ("adjustment", "ADJ-1", "WH1"),
        ("goods_receipt", "RCV-3", "WH1"),
    ]
    assert booked[0]["asn_id"] == asn_id
    assert booked[3]["lines"] == [
        {"sku": "B", "quantity_delta": 2},
        {"sku": "A", "quantity_delta": -1},
    ]
    assert on_hand(client, "A") == {"WH1": 2, "WH2": 5}
    assert on_hand(client, "B") == {"WH1": 6}
    # The ASN and the purchase order are received as by single posts.
    assert client.get(f"/erp/v1/asns/{asn_id}").json()["status"] == "received"
    po = client.get(f"/erp/v1/purchase-orders/{po_id}").json()
    assert [(x["sku"], x["received"], x["open_quantity"]) for x in po["lines"]] == [
        ("A", 6, 4),
        ("B", 4, 0),
    ]
    published = events(settings, 7)
    assert [(e.type, e.subject, e.sequence) for e in published[3:]] == [
        ("asn.received", f"asn:{asn_id}", 2),
        ("purchase_order.changed", f"purchase_order:{po_id}", 3),
        ("goods_issue.posted", "goods_issue:SHP-1", 1),
        ("purchase_order.changed", f"purchase_order:{po_id}", 4),
    ]
    assert published[3].payload(AsnReceived).receipt_id == "RCV-1"
    last = published[6].payload(PurchaseOrderChanged)
    assert [(x.sku, x.open_quantity) for x in last.lines] == [("A", 4), ("B", 0)]


def test_a_replayed_batch_answers_the_same_postings_and_moves_nothing_twice(
    client: TestClient[Any], settings: Settings
) -> None:
    batch = [
        item("p1", posting("goods_receipt", "RCV-1", [("A", 10)])),
        item("p2", posting("goods_issue", "SHP-1", [("A", -4)])),
    ]
    first = [posted(r) for r in send(client, *batch)]
    assert on_hand(client, "A") == {"WH1": 6}
    outbox = outbox_count(settings)
    again = send(client, *batch)
    assert [posted(r) for r in again] == first
    assert on_hand(client, "A") == {"WH1": 6}
    # Partly new: the known key replays, the new one posts.
    mixed = send(client, batch[1], item("p3", posting("scrap", "SCR-1", [("A", -1)])))
    assert posted(mixed[0]) == first[1]
    assert posted(mixed[1])["posting_id"] not in {b["posting_id"] for b in first}
    assert on_hand(client, "A") == {"WH1": 5}
    assert outbox_count(settings) == outbox


def test_a_key_is_shared_with_the_single_post(client: TestClient[Any]) -> None:
    body = posting("goods_receipt", "RCV-1", [("A", 10)])
    single = post(client, SINGLE, body, key="p1")
    assert single.status_code == 201, single.text
    (replayed,) = send(client, item("p1", body))
    assert posted(replayed) == single.json()
    # And the other way round: the single post replays what the batch posted.
    issue = posting("goods_issue", "SHP-1", [("A", -3)])
    (made,) = send(client, item("p2", issue))
    again = post(client, SINGLE, issue, key="p2")
    assert again.status_code == 201, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == posted(made)
    assert on_hand(client, "A") == {"WH1": 7}
    # A key reused with another payload is refused, on either endpoint.
    (reused,) = send(client, item("p1", posting("goods_receipt", "RCV-1", [("A", 99)])))
    refused(reused, 422, "idempotency-key-reused")
    other = post(client, SINGLE, posting("goods_issue", "SHP-1", [("A", -9)]), key="p2")
    assert_problem(other, 422, "idempotency-key-reused")
    assert on_hand(client, "A") == {"WH1": 7}


def test_a_refused_item_changes_nothing_while_the_others_are_posted(
    client: TestClient[Any], settings: Settings
) -> None:
    earlier = post(client, SINGLE, posting("goods_issue", "SHP-0", [("A", -1)]), key="p0")
    assert earlier.status_code == 201, earlier.text
    outbox = outbox_count(settings)
    results = send(
        client,
        item("p1", posting("goods_receipt", "RCV-1", [("A", 10)])),
        # The same (kind, reference) as one posted before, under a new key.
        item("p2", posting("goods_issue", "SHP-0", [("A", -1)])),
        # A line of the wrong sign.
        item("p3", posting("goods_issue", "SHP-1", [("A", 3)])),
        # Refused after its lines were booked (no such ASN): undone whole.
        item("p4", posting("goods_receipt", "RCV-2", [("A", 50)]) | {"asn_id": "ASN-NONE"}),
        item("p5", posting("adjustment", "ADJ-1", [("A", 2)])),
        # The same (kind, reference) as an item before it in this batch.
        item("p6", posting("goods_receipt", "RCV-1", [("A", 10)])),
    )
    refused(results[1], 409, "duplicate-posting")
    refused(results[2], 422, "invalid-quantity")
    refused(results[3], 422, "unknown-asn")
    refused(results[5], 409, "duplicate-posting")
    assert [posted(results[n])["reference"] for n in (0, 4)] == ["RCV-1", "ADJ-1"]
    assert on_hand(client, "A") == {"WH1": -1 + 10 + 2}
    assert outbox_count(settings) == outbox  # plain postings emit nothing
    # A refused item stored nothing: its key may be used again, now well.
    (retried,) = send(client, item("p4", posting("goods_receipt", "RCV-2", [("A", 5)])))
    assert posted(retried)["reference"] == "RCV-2"
    assert on_hand(client, "A") == {"WH1": 16}


def test_duplicate_keys_in_a_batch_are_a_problem_and_post_nothing(
    client: TestClient[Any],
) -> None:
    response = client.post(
        BATCH,
        json={
            "postings": [
                item("p1", posting("goods_receipt", "RCV-1", [("A", 1)])),
                item("p1", posting("goods_receipt", "RCV-2", [("A", 1)])),
            ]
        },
    )
    assert_problem(response, 422, "duplicate-idempotency-key")
    assert on_hand(client, "A") == {}
    # Neither key was stored: both may be used.
    (fresh,) = send(client, item("p1", posting("goods_receipt", "RCV-2", [("A", 1)])))
    assert posted(fresh)["reference"] == "RCV-2"


def test_more_than_100_items_none_or_a_bad_key_are_400(client: TestClient[Any]) -> None:
    items = [item(f"p{n}", posting("goods_receipt", f"RCV-{n}", [("A", 1)])) for n in range(101)]
    assert_problem(client.post(BATCH, json={"postings": items}), 400, "invalid-request")
    assert_problem(client.post(BATCH, json={"postings": []}), 400, "invalid-request")
    body = posting("goods_receipt", "RCV-1", [("A", 1)])
    for bad in (
        item("two words", body),  # not a header token
        item("", body),
        item("k" * 256, body),
        {"posting": body},  # no key
        {**item("p1", body), "priority": 1},  # unknown field
    ):
        response = client.post(BATCH, json={"postings": [bad]})
        assert_problem(response, 400, "invalid-request")
    assert on_hand(client, "A") == {}


def test_read_scope_cannot_post_a_batch(client: TestClient[Any], issuer: TestIssuer) -> None:
    token = issuer.token("erp:read", audience="erp")
    response = client.post(
        BATCH,
        json={"postings": [item("p1", posting("goods_receipt", "RCV-1", [("A", 1)]))]},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert_problem(response, 403, "insufficient-scope", correlated=False)
    assert on_hand(client, "A") == {}
