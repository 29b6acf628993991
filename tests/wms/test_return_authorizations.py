"""Returns are received against return authorizations (ADR 0032), on SQLite and
PostgreSQL: the WMS keeps the RMAs the order service registers (PUT, whole), refuses a
receipt without one, against an unknown, cancelled, expired or exhausted one, or for
another order, and then nothing changes (no stock, no event, no room taken); partial
receipts fill an RMA and no more, however many arrive at once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from litestar.testing import TestClient

from shared.events.catalog import ReturnReceived
from shared.settings import Settings
from tests.support.returns import authorize_return
from tests.support.service import post
from tests.wms.helpers import add_warehouse, events_of, outbox_count, stock_rows

WORKERS = 12


def rma_body(lines: list[tuple[str, int]], **changes: Any) -> dict[str, Any]:
    expires = datetime.now(UTC) + timedelta(days=30)
    return {
        "order_id": "SO-1",
        "lines": [{"sku": s, "quantity": q} for s, q in lines],
        "expires_at": expires.isoformat(),
    } | changes


def put_rma(client: TestClient[Any], rma_id: str, body: dict[str, Any]) -> Any:
    return client.put(f"/wms/v1/return-authorizations/{rma_id}", json=body)


def receive(
    client: TestClient[Any], lines: list[tuple[str, int]], *, key: str, **fields: Any
) -> Any:
    body = {"warehouse_id": "WH1", "lines": [{"sku": s, "quantity": q} for s, q in lines]}
    return post(client, "/wms/v1/returns", body | fields, key=key)


def rma_lines(client: TestClient[Any], rma_id: str) -> list[tuple[str, int, int]]:
    found = client.get(f"/wms/v1/return-authorizations/{rma_id}")
    assert found.status_code == 200, found.text
    return [(x["sku"], x["authorized"], x["received"]) for x in found.json()["lines"]]


def test_an_rma_is_put_whole_and_read_back(client: TestClient[Any]) -> None:
    created = put_rma(client, "RMA-1", rma_body([("B", 2), ("A", 3)]))
    assert created.status_code == 200, created.text
    body = created.json()
    assert (body["rma_id"], body["order_id"], body["status"]) == ("RMA-1", "SO-1", "authorized")
    assert body["lines"] == [
        {"sku": "A", "authorized": 3, "received": 0},
        {"sku": "B", "authorized": 2, "received": 0},
    ]
    assert client.get("/wms/v1/return-authorizations/RMA-1").json() == body

    # The same PUT again: 200, nothing moves (not even updated_at).
    same = rma_body([("B", 2), ("A", 3)], expires_at=body["expires_at"])
    repeated = put_rma(client, "RMA-1", same)
    assert repeated.status_code == 200, repeated.text
    assert repeated.json() == body

    replaced = put_rma(client, "RMA-1", rma_body([("A", 1)], status="cancelled"))
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["status"] == "cancelled"
    assert replaced.json()["lines"] == [{"sku": "A", "authorized": 1, "received": 0}]

    missing = client.get("/wms/v1/return-authorizations/RMA-NONE")
    assert missing.status_code == 404
    assert missing.json()["type"] == "/problems/rma-not-found"


def test_bad_rmas_are_refused(client: TestClient[Any]) -> None:
    doubled = put_rma(client, "RMA-1", rma_body([("A", 1), ("A", 2)]))
    assert doubled.status_code == 422
    assert doubled.json()["type"] == "/problems/duplicate-line"
    naive = put_rma(client, "RMA-1", rma_body([("A", 1)], expires_at="2030-01-01T00:00:00"))
    assert naive.status_code in (400, 422)
    zero = put_rma(client, "RMA-1", rma_body([("A", 0)]))
    assert zero.status_code in (400, 422)
    assert client.get("/wms/v1/return-authorizations/RMA-1").status_code == 404

    assert put_rma(client, "RMA-1", rma_body([("A", 1)])).status_code == 200
    other_order = put_rma(client, "RMA-1", rma_body([("A", 1)], order_id="SO-2"))
    assert other_order.status_code == 422
    assert other_order.json()["type"] == "/problems/rma-order-mismatch"


def test_an_rma_never_drops_below_what_was_received(client: TestClient[Any]) -> None:
    add_warehouse(client)
    assert put_rma(client, "RMA-1", rma_body([("A", 5), ("B", 2)])).status_code == 200
    assert receive(client, [("A", 3), ("B", 1)], key="r1", rma_id="RMA-1").status_code == 201

    below = put_rma(client, "RMA-1", rma_body([("A", 2), ("B", 2)]))
    assert below.status_code == 409
    assert below.json()["type"] == "/problems/rma-below-received"
    assert (below.json()["sku"], below.json()["received"]) == ("A", 3)
    dropped = put_rma(client, "RMA-1", rma_body([("A", 5)]))
    assert dropped.status_code == 409
    assert dropped.json()["sku"] == "B"
    assert rma_lines(client, "RMA-1") == [("A", 5, 3), ("B", 2, 1)]

    # Down to exactly what was received, and a new sku: fine, the counts are kept.
    shrunk = put_rma(client, "RMA-1", rma_body([("A", 3), ("B", 1), ("C", 4)]))
    assert shrunk.status_code == 200, shrunk.text
    assert rma_lines(client, "RMA-1") == [("A", 3, 3), ("B", 1, 1), ("C", 4, 0)]


def test_receipts_outside_an_open_rma_are_refused_and_change_nothing(
    client: TestClient[Any], settings: Settings
) -> None:
    add_warehouse(client)
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    assert put_rma(client, "RMA-OPEN", rma_body([("A", 2)])).status_code == 200
    assert put_rma(client, "RMA-OLD", rma_body([("A", 2)], expires_at=past)).status_code == 200
    cancelled = rma_body([("A", 2)], status="cancelled")
    assert put_rma(client, "RMA-OFF", cancelled).status_code == 200
    before = (stock_rows(client, "A"), outbox_count(settings))

    cases: list[tuple[dict[str, Any], list[tuple[str, int]], int, str]] = [
        ({}, [("A", 1)], 422, "rma-required"),
        ({"order_id": "SO-1"}, [("A", 1)], 422, "rma-required"),
        ({"rma_id": "RMA-NONE"}, [("A", 1)], 422, "unknown-rma"),
        ({"rma_id": "RMA-OLD"}, [("A", 1)], 409, "rma-closed"),
        ({"rma_id": "RMA-OFF"}, [("A", 1)], 409, "rma-closed"),
        ({"rma_id": "RMA-OPEN"}, [("A", 3)], 409, "rma-exhausted"),
        ({"rma_id": "RMA-OPEN"}, [("A", 1), ("B", 1)], 409, "rma-exhausted"),
        ({"rma_id": "RMA-OPEN", "order_id": "SO-2"}, [("A", 1)], 422, "rma-order-mismatch"),
    ]
    for n, (fields, lines, status, slug) in enumerate(cases):
        refused = receive(client, lines, key=f"bad{n}", **fields)
        assert refused.status_code == status, (fields, lines, refused.text)
        assert refused.json()["type"] == f"/problems/{slug}", refused.text

    exhausted = receive(client, [("A", 3)], key="bad-x", rma_id="RMA-OPEN").json()
    assert (exhausted["sku"], exhausted["authorized"], exhausted["received"]) == ("A", 2, 0)
    # Nothing taken into stock, nothing published, no room taken.
    assert (stock_rows(client, "A"), outbox_count(settings)) == before
    assert stock_rows(client, "B") == {}
    assert rma_lines(client, "RMA-OPEN") == [("A", 2, 0)]


def test_partial_receipts_fill_the_rma_and_no_more(
    client: TestClient[Any], settings: Settings
) -> None:
    add_warehouse(client)
    rma_id = authorize_return(client, "SO-1", [("A", 5), ("B", 1)])
    first = receive(client, [("A", 2)], key="r1", rma_id=rma_id)
    assert first.status_code == 201, first.text
    # order_id may be omitted (the RMA's) or given (must be the RMA's).
    assert (first.json()["order_id"], first.json()["rma_id"]) == ("SO-1", rma_id)
    second = receive(client, [("A", 3), ("B", 1)], key="r2", rma_id=rma_id, order_id="SO-1")
    assert second.status_code == 201, second.text
    assert rma_lines(client, rma_id) == [("A", 5, 5), ("B", 1, 1)]

    over = receive(client, [("A", 1)], key="r3", rma_id=rma_id)
    assert over.status_code == 409
    assert over.json()["type"] == "/problems/rma-exhausted"
    assert stock_rows(client, "A")[("WH1", None)]["quality_control"] == 5
    assert stock_rows(client, "A")[("WH1", None)]["available"] == 0

    received = events_of(settings, "return.received", 2)
    assert {e.payload(ReturnReceived).rma_id for e in received} == {rma_id}
    assert {e.payload(ReturnReceived).order_id for e in received} == {"SO-1"}


def test_lots_of_one_sku_count_together_against_the_rma(client: TestClient[Any]) -> None:
    add_warehouse(client)
    rma_id = authorize_return(client, "SO-1", [("A", 3)])
    lots = [{"sku": "A", "quantity": 2, "lot": "L1"}, {"sku": "A", "quantity": 2, "lot": "L2"}]
    body = {"warehouse_id": "WH1", "rma_id": rma_id, "lines": lots}
    refused = post(client, "/wms/v1/returns", body, key="r1")
    assert refused.status_code == 409
    assert refused.json()["type"] == "/problems/rma-exhausted"
    lots[1]["quantity"] = 1
    assert post(client, "/wms/v1/returns", body, key="r2").status_code == 201
    assert rma_lines(client, rma_id) == [("A", 3, 3)]


def test_concurrent_receipts_never_exceed_the_rma(
    client: TestClient[Any], settings: Settings
) -> None:
    add_warehouse(client)
    rma_id = authorize_return(client, "SO-1", [("A", 6)])

    def one(n: int) -> int:
        return int(receive(client, [("A", 1)], key=f"k{n}", rma_id=rma_id).status_code)

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        statuses = list(pool.map(one, range(WORKERS)))

    assert sorted(statuses) == [201] * 6 + [409] * (WORKERS - 6)
    assert rma_lines(client, rma_id) == [("A", 6, 6)]
    row = stock_rows(client, "A")[("WH1", None)]
    assert (row["on_hand"], row["quality_control"], row["available"]) == (6, 6, 0)
    assert len(events_of(settings, "return.received", 6)) == 6


def test_concurrent_receipts_and_a_cancellation_leave_the_rma_consistent(
    client: TestClient[Any],
) -> None:
    """A cancellation racing receipts: every receipt is before it (201, counted) or
    after it (409 rma-closed), never half."""
    add_warehouse(client)
    rma_id = authorize_return(client, "SO-1", [("A", 8)])
    cancel = rma_body([("A", 8)], status="cancelled")

    def one(n: int) -> int:
        if n == 4:
            response = put_rma(client, rma_id, cancel)
            assert response.status_code in (200, 409), response.text
            return 0
        return int(receive(client, [("A", 1)], key=f"k{n}", rma_id=rma_id).status_code)

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = [s for s in pool.map(one, range(9)) if s]

    accepted = statuses.count(201)
    assert set(statuses) <= {201, 409}
    assert rma_lines(client, rma_id) == [("A", 8, accepted)]
    # Nothing received (the cancellation came first) leaves no stock row at all.
    held = stock_rows(client, "A").get(("WH1", None), {}).get("quality_control", 0)
    assert held == accepted


@pytest.mark.parametrize("status", ["authorized", "cancelled"])
def test_a_put_rma_keeps_what_was_received(client: TestClient[Any], status: str) -> None:
    add_warehouse(client)
    rma_id = authorize_return(client, "SO-1", [("A", 2)])
    assert receive(client, [("A", 2)], key="r1", rma_id=rma_id).status_code == 201
    again = put_rma(client, rma_id, rma_body([("A", 4)], status=status))
    assert again.status_code == 200, again.text
    assert rma_lines(client, rma_id) == [("A", 4, 2)]
    more = receive(client, [("A", 1)], key="r2", rma_id=rma_id)
    assert more.status_code == (201 if status == "authorized" else 409), more.text
