"""``POST /availability/v1/allocations/fills/batch``: the backorders waiting for new
stock filled in one call, each as its single ``/fill`` would fill it, under its own
key, in the batch's order; through the service over HTTP on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from litestar.testing import TestClient

from shared.settings import Settings
from tests.availability.helpers import movements, order, stock
from tests.availability.test_fills import fill, lines_of

FILLS = "/availability/v1/allocations/fills/batch"


def fill_batch(client: TestClient[Any], items: list[dict[str, Any]]) -> Any:
    return client.post(FILLS, json={"fills": items})


def test_fills_are_served_in_the_batchs_order_and_each_answers_as_its_single_call(
    client: TestClient[Any], settings: Settings
) -> None:
    stock(client, settings, "WH1", A=2, B=1)
    for order_id in ("SO-1", "SO-2", "SO-3"):
        order(client, order_id, [("A", 2)], policy="partial")
    order(client, "SO-4", [("B", 2)], policy="ship_complete")
    stock(client, settings, "WH1", A=3, B=1)  # A: 3 more, B: 2 in all (SO-4 backordered 2)
    answer = fill_batch(
        client,
        [
            {"idempotency_key": "f-2", "allocation_id": "SO-2"},
            {"idempotency_key": "f-3", "allocation_id": "SO-3", "fill": {}},
            {"idempotency_key": "f-x", "allocation_id": "SO-NONE"},
            {
                "idempotency_key": "f-1",
                "allocation_id": "SO-1",
                "fill": {"lines": [{"sku": "A", "quantity": 5}]},  # 2 backordered
            },
            {"idempotency_key": "f-4", "allocation_id": "SO-4"},
        ],
    )
    assert answer.status_code == 200, answer.text
    two, three, unknown, bad, four = answer.json()["results"]
    # SO-2 came first: its whole backorder (2); SO-3 what was left (1).
    assert two["status"] == 200 and sum(f["quantity"] for f in two["fill"]["filled"]) == 2
    assert lines_of(three["fill"]["allocation"]) == [("A", 2, 1, 1, 0, 0)]
    assert (unknown["refusal"]["status"], unknown["refusal"]["type"]) == (
        404,
        "/problems/allocation-not-found",
    )
    assert (bad["refusal"]["status"], bad["refusal"]["type"]) == (
        422,
        "/problems/fill-exceeds-backorder",
    )
    assert "fill" not in bad
    assert lines_of(four["fill"]["allocation"]) == [("B", 2, 2, 0, 0, 0)]

    # The single call with an item's key replays that item's fill; the batch sent again
    # fills nothing twice.
    single = fill(client, "SO-2", key="f-2")
    assert single.status_code == 200 and single.json() == two["fill"]
    ledger = movements(client, "A")
    again = fill_batch(
        client,
        [
            {"idempotency_key": "f-2", "allocation_id": "SO-2"},
            {"idempotency_key": "f-3", "allocation_id": "SO-3", "fill": {}},
        ],
    )
    assert [r["fill"] for r in again.json()["results"]] == [two["fill"], three["fill"]]
    assert movements(client, "A") == ledger
    # A key reused for another allocation is that item's 422; the other still fills.
    reused = fill_batch(
        client,
        [
            {"idempotency_key": "f-2", "allocation_id": "SO-3"},
            {"idempotency_key": "f-1b", "allocation_id": "SO-1"},
        ],
    )
    refused, filled = reused.json()["results"]
    assert refused["refusal"]["status"] == 422
    assert filled["status"] == 200 and filled["fill"]["filled"] == []  # nothing left of A


def test_a_batch_with_a_key_twice_is_refused_whole_and_fills_nothing(
    client: TestClient[Any], settings: Settings
) -> None:
    stock(client, settings, "WH1", A=1)
    order(client, "SO-1", [("A", 3)], policy="partial")
    stock(client, settings, "WH1", A=2)
    ledger = movements(client, "A")
    answer = fill_batch(
        client,
        [
            {"idempotency_key": "same", "allocation_id": "SO-1"},
            {"idempotency_key": "same", "allocation_id": "SO-1"},
        ],
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["type"] == "/problems/duplicate-idempotency-key"
    assert movements(client, "A") == ledger


def test_once_a_sku_runs_out_the_later_fills_still_get_their_other_skus(
    client: TestClient[Any], settings: Settings
) -> None:
    """The first fill takes the last of A: the fill after it that wants only A gets
    nothing, the one that also wants B gets its B."""
    for order_id, lines in (
        ("SO-1", [("A", 2)]),
        ("SO-2", [("A", 1)]),
        ("SO-3", [("A", 1), ("B", 2)]),
    ):
        order(client, order_id, lines, policy="partial")
    stock(client, settings, "WH1", A=2, B=2)
    answer = fill_batch(
        client,
        [{"idempotency_key": f"f-{n}", "allocation_id": f"SO-{n}"} for n in (1, 2, 3)],
    )
    assert answer.status_code == 200, answer.text
    first, second, third = (r["fill"] for r in answer.json()["results"])
    assert lines_of(first["allocation"]) == [("A", 2, 2, 0, 0, 0)]
    assert second["filled"] == [] and lines_of(second["allocation"]) == [("A", 1, 0, 1, 0, 0)]
    assert [(f["sku"], f["quantity"]) for f in third["filled"]] == [("B", 2)]
    assert lines_of(third["allocation"]) == [("A", 1, 0, 1, 0, 0), ("B", 2, 2, 0, 0, 0)]
