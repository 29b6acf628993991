from __future__ import annotations

from typing import Any

from litestar.testing import TestClient

from shared.events.catalog import ReturnDispositioned, ReturnReceived
from shared.settings import Settings
from tests.support.returns import authorize_return
from tests.support.service import post
from tests.wms.helpers import add_warehouse, events_of, outbox_count, stock_rows, stock_sequences


def receive_return(client: TestClient[Any], lines: list[dict[str, Any]], *, key: str) -> Any:
    """Registers an RMA for exactly these lines (ADR 0032), then receives them against it."""
    rma_id = authorize_return(client, "SO-1", [(x["sku"], x["quantity"]) for x in lines])
    body = {"order_id": "SO-1", "warehouse_id": "WH1", "lines": lines, "rma_id": rma_id}
    return post(client, "/wms/v1/returns", body, key=key)


def disposition(
    client: TestClient[Any], return_id: str, lines: list[dict[str, Any]], *, key: str
) -> Any:
    return post(client, f"/wms/v1/returns/{return_id}/disposition", {"lines": lines}, key=key)


def test_return_goes_to_quality_control_then_each_disposition(
    client: TestClient[Any], settings: Settings
) -> None:
    add_warehouse(client)
    received = receive_return(client, [{"sku": "A", "quantity": 10, "lot": "L1"}], key="r1")
    assert received.status_code == 201, received.text
    return_id = received.json()["return_id"]
    assert received.json()["status"] == "received"
    assert stock_rows(client, "A")[("WH1", "L1")] == {
        "on_hand": 10,
        "quality_control": 10,
        "damaged": 0,
        "hold": 0,
        "picked": 0,
        "available": 0,
    }

    done = disposition(
        client,
        return_id,
        [
            {"sku": "A", "lot": "L1", "quantity": 4, "disposition": "restock"},
            {"sku": "A", "lot": "L1", "quantity": 3, "disposition": "damaged"},
            {"sku": "A", "lot": "L1", "quantity": 2, "disposition": "scrap"},
            {"sku": "A", "lot": "L1", "quantity": 1, "disposition": "return_to_vendor"},
        ],
        key="d1",
    )
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "dispositioned"
    assert done.json()["lines"][0] | {} == {
        "sku": "A",
        "quantity": 10,
        "lot": "L1",
        "restocked": 4,
        "damaged": 3,
        "scrapped": 2,
        "returned_to_vendor": 1,
        "held": 0,
    }
    assert stock_rows(client, "A")[("WH1", "L1")] == {
        "on_hand": 7,
        "quality_control": 0,
        "damaged": 3,
        "hold": 0,
        "picked": 0,
        "available": 4,
    }
    (rcv,) = events_of(settings, "return.received", 1)
    assert rcv.payload(ReturnReceived).lines[0].lot == "L1"
    (disp,) = events_of(settings, "return.dispositioned", 1)
    lines = disp.payload(ReturnDispositioned).lines
    assert [(x.disposition, x.quantity) for x in lines] == [
        ("restock", 4),
        ("damaged", 3),
        ("scrap", 2),
        ("return_to_vendor", 1),
    ]
    assert stock_sequences(settings) == [1, 2]
    assert client.get(f"/wms/v1/returns/{return_id}").json() == done.json()


def test_over_disposition_is_409_and_changes_nothing(
    client: TestClient[Any], settings: Settings
) -> None:
    add_warehouse(client)
    return_id = receive_return(client, [{"sku": "A", "quantity": 3}], key="r1").json()["return_id"]
    assert (
        disposition(
            client, return_id, [{"sku": "A", "quantity": 2, "disposition": "restock"}], key="d1"
        ).status_code
        == 200
    )
    before = (stock_rows(client, "A"), outbox_count(settings))
    too_much = disposition(
        client,
        return_id,
        [
            {"sku": "A", "quantity": 1, "disposition": "scrap"},
            {"sku": "A", "quantity": 1, "disposition": "restock"},
        ],
        key="d2",
    )
    assert too_much.status_code == 409
    assert too_much.json()["type"] == "/problems/over-disposition"
    not_returned = disposition(
        client, return_id, [{"sku": "B", "quantity": 1, "disposition": "scrap"}], key="d3"
    )
    assert not_returned.status_code == 409
    assert (stock_rows(client, "A"), outbox_count(settings)) == before
    assert client.get(f"/wms/v1/returns/{return_id}").json()["status"] == "received"
    missing = disposition(
        client, "RET-x", [{"sku": "A", "quantity": 1, "disposition": "scrap"}], key="d4"
    )
    assert missing.status_code == 404
    assert client.get("/wms/v1/returns/RET-x").status_code == 404
    rma_id = authorize_return(client, "SO-1", [("A", 1)])
    unknown_wh = post(
        client,
        "/wms/v1/returns",
        {"rma_id": rma_id, "warehouse_id": "NOPE", "lines": [{"sku": "A", "quantity": 1}]},
        key="r9",
    )
    assert unknown_wh.status_code == 422
    assert unknown_wh.json()["type"] == "/problems/unknown-warehouse"
    # Refused: the RMA's room is untouched.
    rma = client.get(f"/wms/v1/return-authorizations/{rma_id}").json()
    assert rma["lines"] == [{"sku": "A", "authorized": 1, "received": 0}]
