"""Inspection may keep returned units in quality control (disposition
``quality_control``: the line's ``held``, still unsellable) until a release gives them
their final disposition (ADR 0032). Events carry only final lines, each call under its
own ``disposition_id``; a call that only holds changes no stock and publishes nothing."""

from __future__ import annotations

from typing import Any

from litestar.testing import TestClient

from process_apis.availability.postings import plans
from shared.events.catalog import DispositionedLine, ReturnDispositioned
from shared.events.envelope import new_event
from shared.settings import Settings
from tests.support.returns import authorize_return
from tests.support.service import post
from tests.wms.helpers import add_warehouse, events_of, outbox_count, stock_rows, stock_sequences


def received(client: TestClient[Any], quantity: int) -> str:
    rma_id = authorize_return(client, "SO-1", [("A", quantity)])
    body = {"rma_id": rma_id, "warehouse_id": "WH1", "lines": [{"sku": "A", "quantity": quantity}]}
    response = post(client, "/wms/v1/returns", body, key="rcv")
    assert response.status_code == 201, response.text
    return str(response.json()["return_id"])


def inspect(client: TestClient[Any], return_id: str, lines: list[tuple[int, str]], key: str) -> Any:
    body = {"lines": [{"sku": "A", "quantity": q, "disposition": d} for q, d in lines]}
    return post(client, f"/wms/v1/returns/{return_id}/disposition", body, key=key)


def release(client: TestClient[Any], return_id: str, lines: list[dict[str, Any]], key: str) -> Any:
    return post(client, f"/wms/v1/returns/{return_id}/release", {"lines": lines}, key=key)


def figures(client: TestClient[Any]) -> tuple[int, int, int]:
    row = stock_rows(client, "A")[("WH1", None)]
    return row["on_hand"], row["quality_control"], row["available"]


def test_held_units_stay_unsellable_until_released(
    client: TestClient[Any], settings: Settings
) -> None:
    add_warehouse(client)
    return_id = received(client, 6)
    mixed = inspect(client, return_id, [(2, "restock"), (3, "quality_control")], key="d1")
    assert mixed.status_code == 200, mixed.text
    (line,) = mixed.json()["lines"]
    assert (line["restocked"], line["held"]) == (2, 3)
    assert mixed.json()["status"] == "received"
    assert figures(client) == (6, 4, 2)

    # Only holding: no stock change, no stock version, no event.
    events_of(settings, "return.dispositioned", 1)  # d1's event relayed
    before = (stock_sequences(settings), outbox_count(settings))
    held = inspect(client, return_id, [(1, "quality_control")], key="d2")
    assert held.status_code == 200, held.text
    assert held.json()["lines"][0]["held"] == 4
    assert figures(client) == (6, 4, 2)
    assert outbox_count(settings) == before[1]

    # Nothing is left to inspect: the held units are not inspectable twice.
    again = inspect(client, return_id, [(1, "restock")], key="d3")
    assert again.status_code == 409
    assert again.json()["type"] == "/problems/over-disposition"

    too_many = release(client, return_id, [{"sku": "A", "quantity": 5}], key="x1")
    assert too_many.status_code == 409
    assert too_many.json()["type"] == "/problems/over-release"
    partly = release(
        client,
        return_id,
        [
            {"sku": "A", "quantity": 3},  # restock by default
            {"sku": "A", "quantity": 2, "disposition": "scrap"},
        ],
        key="x2",
    )
    assert partly.status_code == 409, "5 asked of 4 held: nothing of it happens"
    assert figures(client) == (6, 4, 2)

    done = release(
        client,
        return_id,
        [{"sku": "A", "quantity": 3}, {"sku": "A", "quantity": 1, "disposition": "scrap"}],
        key="x3",
    )
    assert done.status_code == 200, done.text
    (line,) = done.json()["lines"]
    assert (line["restocked"], line["scrapped"], line["held"]) == (5, 1, 0)
    assert done.json()["status"] == "dispositioned"
    assert figures(client) == (5, 0, 5)
    assert client.get(f"/wms/v1/returns/{return_id}").json() == done.json()

    first, second = [
        e.payload(ReturnDispositioned) for e in events_of(settings, "return.dispositioned", 2)
    ]
    assert [(x.quantity, x.disposition) for x in first.lines] == [(2, "restock")]
    assert [(x.quantity, x.disposition) for x in second.lines] == [(3, "restock"), (1, "scrap")]
    assert (first.released, second.released) == (False, True)
    assert first.rma_id == second.rma_id and first.rma_id is not None
    assert first.disposition_id and second.disposition_id
    assert first.disposition_id.startswith("DSP-")
    assert first.disposition_id != second.disposition_id
    # rcv, d1, x3 raised the stock version; d2 (hold only) and the refusals did not:
    # the warehouse's stock events have no gap a consumer would wait on.
    assert before[0] == [1, 2]
    assert stock_sequences(settings) == [1, 2, 3]


def test_a_replayed_release_is_one_release(client: TestClient[Any], settings: Settings) -> None:
    add_warehouse(client)
    return_id = received(client, 2)
    assert inspect(client, return_id, [(2, "quality_control")], key="d1").status_code == 200
    lines = [{"sku": "A", "quantity": 2}]
    first = release(client, return_id, lines, key="x1")
    replay = release(client, return_id, lines, key="x1")
    assert first.status_code == replay.status_code == 200
    assert first.json() == replay.json()
    assert figures(client) == (2, 0, 2)
    assert len(events_of(settings, "return.dispositioned", 1)) == 1
    unknown = release(client, "RET-NONE", lines, key="x2")
    assert unknown.status_code == 404


def test_a_scrap_posts_under_its_disposition() -> None:
    """Two dispositions of one return scrap twice: two postings, not a duplicate."""

    def fact(disposition_id: str | None) -> Any:
        return new_event(
            source="tally.wms",
            type_="return.dispositioned",
            subject="warehouse:WH1",
            sequence=3,
            payload=ReturnDispositioned(
                return_id="RET-1",
                order_id="SO-1",
                warehouse_id="WH1",
                lines=[DispositionedLine(sku="A", quantity=2, disposition="scrap")],
                rma_id="RMA-1",
                disposition_id=disposition_id,
            ),
        )

    one, two = plans.scrap(fact("DSP-1")), plans.scrap(fact("DSP-2"))
    assert one is not None and two is not None
    assert (one.reference, two.reference) == ("DSP-1", "DSP-2")
    assert one.idempotency_key != two.idempotency_key
    legacy = plans.scrap(fact(None))
    assert legacy is not None and legacy.reference == "RET-1-scrap"
