"""``POST /erp/v1/invoices/batch``: up to 100 invoices in one call, each answered as the
single ``POST /erp/v1/invoices`` with its Idempotency-Key would answer it."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import TestClient

from tests.erp.money import book, customer, get, goods_issue, invoice_body, usd
from tests.support.problems import assert_problem
from tests.support.service import post
from tests.support.tokens import TestIssuer

BATCH = "/erp/v1/invoices/batch"
SINGLE = "/erp/v1/invoices"


def item(key: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"idempotency_key": key, "invoice": body}


def send(client: TestClient[Any], *items: dict[str, Any]) -> list[dict[str, Any]]:
    response = client.post(BATCH, json={"invoices": list(items)})
    assert response.status_code == 200, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    assert [r["idempotency_key"] for r in results] == [i["idempotency_key"] for i in items]
    return results


def issued(result: dict[str, Any]) -> dict[str, Any]:
    assert result["refusal"] is None, result
    made: dict[str, Any] = result["invoice"]
    return made


def refused(result: dict[str, Any], status: int, slug: str) -> dict[str, Any]:
    assert result["invoice"] is None, result
    why: dict[str, Any] = result["refusal"]
    assert (why["status"], why["type"]) == (status, f"/problems/{slug}"), result
    return why


def invoices(client: TestClient[Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = get(client, SINGLE, limit=500)["items"]
    return found


def invoiced(client: TestClient[Any], order_id: str = "ORD-1") -> Any:
    return get(client, f"/erp/v1/sales-orders/{order_id}")["invoiced"]


def shipment(shipment_id: str, *lines: tuple[str, int, int], **kw: Any) -> dict[str, Any]:
    """The invoice of ``shipment_id`` of ORD-1: ``lines`` (sku, quantity, unit price)."""
    order_id = kw.pop("order_id", "ORD-1")
    return invoice_body(order_id, shipment_id, list(lines), **kw)


@pytest.fixture(autouse=True)
def booked(client: TestClient[Any]) -> None:
    """CUST-A (USD) with ORD-1 booked: 10 A at 1000 and 5 B at 250; CUST-B (USD)."""
    customer(client)
    customer(client, "CUST-B")
    book(client, "ORD-1", [("A", 10, 1000), ("B", 5, 250)])


def test_a_batch_issues_each_invoice_as_its_single_post_would(client: TestClient[Any]) -> None:
    goods_issue(client, "SHP-1", [("A", 2), ("B", 1)])
    goods_issue(client, "SHP-2", [("A", 3)])
    goods_issue(client, "SHP-3", [("B", 4)])
    results = send(
        client,
        item("inv:SHP-1", shipment("SHP-1", ("A", 2, 1000), ("B", 1, 250))),
        item("inv:SHP-2", shipment("SHP-2", ("A", 3, 1000))),
        item("inv:SHP-3", shipment("SHP-3", ("B", 4, 250))),
    )
    made = [issued(r) for r in results]
    assert [m["shipment_id"] for m in made] == ["SHP-1", "SHP-2", "SHP-3"]
    assert len({m["invoice_id"] for m in made}) == 3
    first = made[0]
    assert (first["order_id"], first["customer_id"], first["status"]) == (
        "ORD-1",
        "CUST-A",
        "issued",
    )
    assert (first["subtotal"], first["total"], first["outstanding"]) == (
        usd(2250),
        usd(2250),
        usd(2250),
    )
    assert [(x["sku"], x["quantity"], x["amount"]) for x in first["lines"]] == [
        ("A", 2, usd(2000)),
        ("B", 1, usd(250)),
    ]
    # Readable as any invoice: each as the batch answered it.
    assert sorted(invoices(client), key=lambda i: i["shipment_id"]) == made
    for m in made:
        assert get(client, f"{SINGLE}/{m['invoice_id']}") == m
    assert invoiced(client) == usd(2250 + 3000 + 1000)


def test_a_replayed_batch_answers_the_same_invoices_and_issues_nothing_twice(
    client: TestClient[Any],
) -> None:
    goods_issue(client, "SHP-1", [("A", 2)])
    goods_issue(client, "SHP-2", [("A", 3)])
    goods_issue(client, "SHP-3", [("B", 1)])
    batch = [
        item("inv:SHP-1", shipment("SHP-1", ("A", 2, 1000))),
        item("inv:SHP-2", shipment("SHP-2", ("A", 3, 1000))),
    ]
    first = [issued(r) for r in send(client, *batch)]
    again = [issued(r) for r in send(client, *batch)]
    assert again == first
    assert len(invoices(client)) == 2
    assert invoiced(client) == usd(5000)
    # Partly new: the known key replays, the new one is issued.
    mixed = send(client, batch[1], item("inv:SHP-3", shipment("SHP-3", ("B", 1, 250))))
    assert issued(mixed[0]) == first[1]
    assert issued(mixed[1])["invoice_id"] not in {f["invoice_id"] for f in first}
    assert len(invoices(client)) == 3
    assert invoiced(client) == usd(5250)


def test_a_key_is_shared_with_the_single_post(client: TestClient[Any]) -> None:
    goods_issue(client, "SHP-1", [("A", 2)])
    goods_issue(client, "SHP-2", [("B", 1)])
    body1 = shipment("SHP-1", ("A", 2, 1000))
    single = post(client, SINGLE, body1, key="inv:SHP-1")
    assert single.status_code == 201, single.text
    (replayed,) = send(client, item("inv:SHP-1", body1))
    assert issued(replayed) == single.json()
    # And the other way round: the single post replays what the batch issued.
    body2 = shipment("SHP-2", ("B", 1, 250))
    (made,) = send(client, item("inv:SHP-2", body2))
    again = post(client, SINGLE, body2, key="inv:SHP-2")
    assert again.status_code == 201, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == issued(made)
    assert len(invoices(client)) == 2
    # A key of either endpoint reused with another payload: 422 for that item only.
    other = shipment("SHP-2", ("B", 1, 250), customer_id="CUST-B")
    reused, also = send(client, item("inv:SHP-1", other), item("inv:SHP-2", body2))
    refused(reused, 422, "idempotency-key-reused")
    assert issued(also) == issued(made)
    assert len(invoices(client)) == 2


def test_a_shipment_not_posted_waits_while_the_others_are_issued(
    client: TestClient[Any],
) -> None:
    goods_issue(client, "SHP-1", [("A", 2)])
    goods_issue(client, "SHP-3", [("B", 1)])
    batch = [
        item("inv:SHP-1", shipment("SHP-1", ("A", 2, 1000))),
        item("inv:SHP-2", shipment("SHP-2", ("A", 1, 1000))),
        item("inv:SHP-3", shipment("SHP-3", ("B", 1, 250))),
    ]
    first = send(client, *batch)
    refused(first[1], 409, "shipment-not-posted")
    made = [issued(first[0]), issued(first[2])]
    assert sorted(i["invoice_id"] for i in invoices(client)) == sorted(
        m["invoice_id"] for m in made
    )
    assert invoiced(client) == usd(2250)
    # A refusal stores nothing: once the goods issue is posted, the same batch sent
    # again replays the two and issues the third under its key.
    goods_issue(client, "SHP-2", [("A", 1)])
    again = send(client, *batch)
    assert [issued(again[0]), issued(again[2])] == made
    late = issued(again[1])
    assert late["shipment_id"] == "SHP-2"
    assert len(invoices(client)) == 3
    assert invoiced(client) == usd(3250)


def test_a_second_invoice_of_a_shipment_is_a_duplicate_for_that_item(
    client: TestClient[Any],
) -> None:
    goods_issue(client, "SHP-1", [("A", 2)])
    goods_issue(client, "SHP-2", [("A", 1)])
    goods_issue(client, "SHP-3", [("B", 1)])
    body1 = shipment("SHP-1", ("A", 2, 1000))
    (first,) = send(client, item("inv:1", body1))
    issued(first)
    results = send(
        client,
        item("inv:1-again", body1),  # a new key for a shipment invoiced already
        item("inv:2", shipment("SHP-2", ("A", 1, 1000))),
        item("inv:3", shipment("SHP-3", ("B", 1, 250))),
        item("inv:3-again", shipment("SHP-3", ("B", 1, 250))),  # twice in one batch
    )
    refused(results[0], 409, "duplicate-invoice")
    issued(results[1])
    issued(results[2])
    refused(results[3], 409, "duplicate-invoice")
    assert sorted(i["shipment_id"] for i in invoices(client)) == ["SHP-1", "SHP-2", "SHP-3"]
    assert invoiced(client) == usd(3250)


def test_each_refusal_is_the_single_posts_and_changes_nothing_of_that_item(
    client: TestClient[Any],
) -> None:
    for n in range(1, 9):
        goods_issue(client, f"SHP-{n}", [("A", 2), ("B", 1)])
    cases: list[tuple[dict[str, Any], int, str | None]] = [
        (shipment("SHP-1", ("A", 2, 1000)), 201, None),
        (shipment("SHP-X", ("A", 1, 1000)), 409, "shipment-not-posted"),
        (shipment("SHP-2", ("A", 1, 1000), order_id="ORD-9"), 409, "order-not-booked"),
        (shipment("SHP-3", ("A", 1, 1000), customer_id="CUST-B"), 422, "customer-mismatch"),
        (shipment("SHP-4", ("Z", 1, 1000)), 422, "not-on-order"),
        (shipment("SHP-5", ("A", 1, 999)), 422, "price-mismatch"),
        (shipment("SHP-6", ("A", 3, 1000)), 422, "over-billing"),
        (shipment("SHP-7", ("A", 1, 1000), currency="EUR"), 422, "currency-mismatch"),
        (shipment("SHP-8", ("B", 1, 250)), 201, None),
    ]
    results = send(client, *(item(f"k:{n}", body) for n, (body, _, _) in enumerate(cases)))
    made = [issued(results[0]), issued(results[-1])]
    assert sorted(i["invoice_id"] for i in invoices(client)) == sorted(
        m["invoice_id"] for m in made
    )
    for n, (body, status, slug) in enumerate(cases):
        if slug is None:
            continue
        why = refused(results[n], status, slug)
        # The single post with the same key answers the same problem (the batch stored
        # nothing under the key, so it is no replay).
        single = post(client, SINGLE, body, key=f"k:{n}")
        problem = assert_problem(single, status, slug)
        assert why == {"type": problem["type"], "status": status, "detail": problem["detail"]}
    assert len(invoices(client)) == 2
    assert invoiced(client) == usd(2250)


def test_duplicate_keys_in_a_batch_are_a_problem_and_issue_nothing(
    client: TestClient[Any],
) -> None:
    goods_issue(client, "SHP-1", [("A", 2)])
    goods_issue(client, "SHP-2", [("A", 1)])
    response = client.post(
        BATCH,
        json={
            "invoices": [
                item("inv:1", shipment("SHP-1", ("A", 2, 1000))),
                item("inv:1", shipment("SHP-2", ("A", 1, 1000))),
            ]
        },
    )
    assert_problem(response, 422, "duplicate-idempotency-key")
    assert invoices(client) == []


def test_more_than_100_items_none_or_a_bad_key_are_400(client: TestClient[Any]) -> None:
    goods_issue(client, "SHP-0", [("A", 1)])
    body = shipment("SHP-0", ("A", 1, 1000))
    many = [item(f"inv:{n}", body) for n in range(101)]
    assert_problem(client.post(BATCH, json={"invoices": many}), 400, "invalid-request")
    assert_problem(client.post(BATCH, json={"invoices": []}), 400, "invalid-request")
    bad = [
        item("", body),
        item("has space", body),
        item("k" * 256, body),
        {**item("inv:1", body), "priority": 1},
        {"idempotency_key": "inv:1"},  # no invoice
        body,  # no key
    ]
    for one in bad:
        response = client.post(BATCH, json={"invoices": [one]})
        assert_problem(response, 400, "invalid-request")
    assert invoices(client) == []
    # The limit is 100: a batch of exactly 100 is taken (one issued, 99 duplicates).
    results = send(client, *many[:100])
    issued(results[0])
    for result in results[1:]:
        refused(result, 409, "duplicate-invoice")
    assert len(invoices(client)) == 1


def test_read_scope_cannot_issue_a_batch(client: TestClient[Any], issuer: TestIssuer) -> None:
    goods_issue(client, "SHP-1", [("A", 1)])
    token = issuer.token("erp:read", audience="erp")
    response = client.post(
        BATCH,
        json={"invoices": [item("inv:1", shipment("SHP-1", ("A", 1, 1000)))]},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert_problem(response, 403, "insufficient-scope", correlated=False)
    assert invoices(client) == []
