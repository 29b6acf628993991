"""``POST /availability/v1/allocations/batch``: an order file's allocations in one call,
each allocated as its single ``POST /availability/v1/allocations`` with its own
Idempotency-Key would be (the same customer check, the same keys), answered in the
batch's order; one item's refusal changes nothing of the others."""

from __future__ import annotations

from typing import Any

from litestar.testing import TestClient
from prometheus_client import REGISTRY

from shared.settings import Settings
from tests.availability.helpers import item, ledger_drift, movements, stock
from tests.support.problems import assert_problem
from tests.support.tokens import TestIssuer

PATH = "/availability/v1/allocations/batch"


def allocation(
    order_id: str, *lines: tuple[str, int], policy: str = "reject", **extra: Any
) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "channel": "b2b",
        "policy": policy,
        "lines": [{"sku": sku, "quantity": q} for sku, q in lines],
        **extra,
    }


def allocate_batch(
    client: TestClient[Any], items: list[tuple[str, dict[str, Any]]], **kwargs: Any
) -> Any:
    payload = {"allocations": [{"idempotency_key": k, "allocation": a} for k, a in items]}
    return client.post(PATH, json=payload, **kwargs)


def bound(issuer: TestIssuer, customer: str, scopes: str) -> dict[str, str]:
    token = issuer.token(
        scopes, audience="availability", client_id=f"partner-{customer}", customer_id=customer
    )
    return {"Authorization": f"Bearer {token}"}


def staff_get(client: TestClient[Any], allocation_id: str) -> Any:
    return client.get(f"/availability/v1/allocations/{allocation_id}")


def test_each_item_is_allocated_or_refused_as_its_single_call_would_be(
    client: TestClient[Any], settings: Settings, issuer: TestIssuer
) -> None:
    stock(client, settings, "WH1", A=10, B=2)
    partner = bound(issuer, "CUST-A", "inventory:read inventory:write")
    items = [
        ("k-1", allocation("SO-1", ("A", 4))),
        ("k-2", allocation("SO-2", ("A", 1), ("B", 5))),  # reject: B is short
        ("k-3", allocation("SO-3", ("B", 3), policy="ship_complete")),  # all backordered
        ("k-4", allocation("SO-4", ("A", 1), customer_id="CUST-B")),  # another customer's
        ("k-5", allocation("SO-5", ("A", 2), ("B", 1), policy="partial")),
    ]

    answer = allocate_batch(client, items, headers=partner)

    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [r["idempotency_key"] for r in results] == ["k-1", "k-2", "k-3", "k-4", "k-5"]
    made, short, backordered, foreign, partial = results

    assert made["status"] == 201 and "refusal" not in made
    assert made["allocation"]["allocation_id"] == "SO-1"
    assert made["allocation"]["status"] == "allocated"
    assert made["allocation"]["customer_id"] == "CUST-A"
    assert made["allocation"] == staff_get(client, "SO-1").json()

    assert "allocation" not in short and "status" not in short
    assert short["refusal"] == {
        "type": "/problems/insufficient-stock",
        "status": 409,
        "detail": "Not enough stock to allocate every line; nothing was allocated.",
        "errors": [{"sku": "B", "requested": 5, "available": 2}],
    }

    assert backordered["status"] == 201
    assert backordered["allocation"]["status"] == "backordered"
    line = backordered["allocation"]["lines"][0]
    assert (line["allocated"], line["backordered"]) == (0, 3)

    assert "allocation" not in foreign
    assert foreign["refusal"]["status"] == 403
    assert foreign["refusal"]["type"] == "/problems/customer-not-permitted"
    assert "errors" not in foreign["refusal"]

    assert partial["status"] == 201
    assert [(x["allocated"], x["backordered"]) for x in partial["allocation"]["lines"]] == [
        (2, 0),
        (1, 0),
    ]

    # What was allocated is the first and last items' lines; the refusals left nothing.
    assert staff_get(client, "SO-2").status_code == 404
    assert staff_get(client, "SO-4").status_code == 404
    assert item(client, "A")["available_to_promise"] == 10 - 4 - 2
    assert item(client, "B")["available_to_promise"] == 2 - 1
    assert ledger_drift(settings) == {}


def batches_committed() -> tuple[float, float]:
    """(group commits, allocation requests in them) of this process so far."""
    count = REGISTRY.get_sample_value("tally_allocation_batch_size_count") or 0.0
    total = REGISTRY.get_sample_value("tally_allocation_batch_size_sum") or 0.0
    return count, total


def test_the_items_of_one_call_are_applied_together_in_one_group_commit(
    client: TestClient[Any], settings: Settings
) -> None:
    stock(client, settings, "WH1", A=100)
    items = [(f"one-tx-{n}", allocation(f"SO-T{n}", ("A", 2))) for n in range(40)]
    before = batches_committed()

    answer = allocate_batch(client, items)

    assert answer.status_code == 200, answer.text
    assert [r["status"] for r in answer.json()["results"]] == [201] * 40
    count, total = batches_committed()
    assert (count - before[0], total - before[1]) == (1, 40)
    assert item(client, "A")["available_to_promise"] == 100 - 80


def test_a_batch_sent_again_allocates_nothing_twice_and_shares_keys_with_the_single_call(
    client: TestClient[Any], settings: Settings
) -> None:
    stock(client, settings, "WH1", A=20)
    items = [(f"file-{n}", allocation(f"SO-R{n}", ("A", n))) for n in (1, 2, 3)]
    first = allocate_batch(client, items)
    assert first.status_code == 200, first.text
    allocated = [r["allocation"] for r in first.json()["results"]]
    assert [a["allocation_id"] for a in allocated] == ["SO-R1", "SO-R2", "SO-R3"]
    assert item(client, "A")["available_to_promise"] == 14
    ledger = movements(client, "A")

    again = allocate_batch(client, items)
    assert again.status_code == 200, again.text
    assert [r["status"] for r in again.json()["results"]] == [201, 201, 201]
    assert [r["allocation"] for r in again.json()["results"]] == allocated

    # The single call with an item's key replays that item's answer...
    single = client.post(
        "/availability/v1/allocations", json=items[1][1], headers={"Idempotency-Key": "file-2"}
    )
    assert single.status_code == 201, single.text
    assert single.headers.get("idempotent-replayed") == "true"
    assert single.json() == allocated[1]
    assert item(client, "A")["available_to_promise"] == 14
    assert movements(client, "A") == ledger

    # ... and a batch replays what the single call allocated.
    alone_body = allocation("SO-ALONE", ("A", 5))
    alone = client.post(
        "/availability/v1/allocations", json=alone_body, headers={"Idempotency-Key": "alone"}
    )
    assert alone.status_code == 201, alone.text
    mixed = allocate_batch(client, [("alone", alone_body), items[0]])
    assert mixed.status_code == 200, mixed.text
    assert [r["allocation"] for r in mixed.json()["results"]] == [alone.json(), allocated[0]]
    assert item(client, "A")["available_to_promise"] == 14 - 5
    assert ledger_drift(settings) == {}


def test_a_key_reused_with_another_allocation_is_that_items_422(
    client: TestClient[Any], settings: Settings
) -> None:
    stock(client, settings, "WH1", A=10)
    first = allocate_batch(client, [("used", allocation("SO-U1", ("A", 2)))])
    assert first.json()["results"][0]["status"] == 201, first.text

    answer = allocate_batch(
        client,
        [("used", allocation("SO-U2", ("A", 3))), ("fresh", allocation("SO-U3", ("A", 1)))],
    )

    assert answer.status_code == 200, answer.text
    reused, fresh = answer.json()["results"]
    assert reused["refusal"]["status"] == 422
    assert reused["refusal"]["type"] == "/problems/idempotency-key-reused"
    assert "allocation" not in reused
    assert fresh["status"] == 201 and fresh["allocation"]["allocation_id"] == "SO-U3"
    assert staff_get(client, "SO-U2").status_code == 404
    assert item(client, "A")["available_to_promise"] == 10 - 2 - 1


def test_a_batch_with_a_key_twice_is_refused_whole_and_allocates_nothing(
    client: TestClient[Any], settings: Settings
) -> None:
    stock(client, settings, "WH1", A=10)
    answer = allocate_batch(
        client,
        [("twice", allocation("SO-D1", ("A", 1))), ("twice", allocation("SO-D2", ("A", 2)))],
    )
    assert_problem(answer, 422, "duplicate-idempotency-key")
    assert staff_get(client, "SO-D1").status_code == 404
    assert staff_get(client, "SO-D2").status_code == 404
    assert item(client, "A")["available_to_promise"] == 10


def test_an_empty_oversized_or_unknown_field_batch_is_a_400_and_allocates_nothing(
    client: TestClient[Any], settings: Settings
) -> None:
    stock(client, settings, "WH1", A=200)
    assert_problem(allocate_batch(client, []), 400)
    many = [(f"many-{n}", allocation(f"SO-M{n}", ("A", 1))) for n in range(101)]
    assert_problem(allocate_batch(client, many), 400)
    one = {"idempotency_key": "odd", "allocation": allocation("SO-X1", ("A", 1))}
    assert_problem(client.post(PATH, json={"allocations": [one], "extra": 1}), 400)
    assert_problem(client.post(PATH, json={"allocations": [{**one, "extra": 1}]}), 400)
    # A single allocation's body, sent with an Idempotency-Key as the single call is:
    # the batch route refuses it (the allocation fast path does not take this path).
    single = client.post(
        PATH, json=allocation("SO-X2", ("A", 1)), headers={"Idempotency-Key": "single"}
    )
    assert_problem(single, 400)
    for order_id in ("SO-M0", "SO-M100", "SO-X1", "SO-X2"):
        assert staff_get(client, order_id).status_code == 404
    assert item(client, "A")["available_to_promise"] == 200


def test_a_batch_needs_the_write_scope(
    client: TestClient[Any], settings: Settings, issuer: TestIssuer
) -> None:
    stock(client, settings, "WH1", A=5)
    reader = bound(issuer, "CUST-A", "inventory:read")
    answer = allocate_batch(client, [("no-scope", allocation("SO-S1", ("A", 1)))], headers=reader)
    assert_problem(answer, 403, "insufficient-scope", correlated=False)
    assert staff_get(client, "SO-S1").status_code == 404
    assert item(client, "A")["available_to_promise"] == 5
