"""Returned units held in quality control become sellable at their release, never
before (ADR 0032), over real ERP, WMS and availability servers sharing one embedded
log: ATP in availability rises only when the release restocks them; the ERP books
each disposition once (scrap under its ``disposition_id``), however often and in
whatever order its event is delivered again."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import httpx
import pytest

from shared.events.catalog import STREAM_WMS, ReturnDispositioned
from shared.events.envelope import Event
from shared.events.sqlite_log import SqliteEventLog
from tests.support.polling import eventually
from tests.support.returns import authorize_return
from tests.support.stack import Stack
from tests.support.tokens import TestIssuer


@pytest.fixture
def stack(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    monkeypatch.setenv("TALLY_EVENTS_RETRY_CAP_SECONDS", "0.5")
    monkeypatch.setenv("TALLY_EVENTS_RETRY_BASE_SECONDS", "0.05")
    with Stack(tmp_path, TestIssuer(), ["erp", "wms", "availability"]) as running:
        yield running


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def ok(response: httpx.Response, status: int = 201) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def wms_post(stack: Stack, path: str, body: dict[str, Any], status: int = 201) -> Any:
    with stack.client("wms", "wms:write") as wms:
        return ok(wms.post(path, json=body, headers={"Idempotency-Key": uid("k")}), status)


def position(stack: Stack, sku: str, wh: str) -> tuple[int, int]:
    """(on_hand, ATP) of ``sku`` at ``wh`` in availability (zeros before it knows it)."""
    with stack.client("availability", "inventory:read") as availability:
        response = availability.get(f"/availability/v1/items/{sku}")
    if response.status_code == 404:
        return 0, 0
    item = ok(response, 200)
    here = [x for x in item["locations"] if x["location_id"] == wh]
    return sum(x["on_hand"] for x in here), sum(x["available_to_promise"] for x in here)


def reaches(stack: Stack, sku: str, wh: str, wanted: tuple[int, int]) -> None:
    found = eventually(lambda: position(stack, sku, wh) == wanted, timeout=30)
    assert found, f"availability shows {position(stack, sku, wh)} of {sku}, not {wanted}"


def erp_postings(stack: Stack, wh: str) -> list[tuple[str, str, list[tuple[str, int]]]]:
    with closing(sqlite3.connect(stack.data_dir / "erp.db")) as db:
        heads = db.execute(
            "SELECT posting_id, kind, reference FROM inventory_postings WHERE warehouse_id = ?"
            " ORDER BY posted_at",
            (wh,),
        ).fetchall()
        return [
            (
                kind,
                reference,
                db.execute(
                    "SELECT sku, quantity_delta FROM inventory_posting_lines"
                    " WHERE posting_id = ? ORDER BY line_no",
                    (posting_id,),
                ).fetchall(),
            )
            for posting_id, kind, reference in heads
        ]


def wms_events(stack: Stack, type_: str) -> list[Event]:
    async def read() -> list[Event]:
        log = SqliteEventLog(stack.bus_path())
        try:
            found = await log.read_all(stream=STREAM_WMS, limit=1000)
        finally:
            await log.close()
        return [event for _, _, event in found if event.type == type_]

    return asyncio.run(read())


def test_held_units_become_sellable_at_their_release_and_post_once(stack: Stack) -> None:
    wh, sku, order_id = uid("WH"), uid("SKU"), uid("SO")
    wms_post(stack, "/wms/v1/warehouses", {"warehouse_id": wh, "name": "Returns"})
    with stack.client("wms", "wms:write") as wms:
        rma_id = authorize_return(wms, order_id, [(sku, 5)])
    lines = [{"sku": sku, "quantity": 5}]
    received = wms_post(
        stack, "/wms/v1/returns", {"rma_id": rma_id, "warehouse_id": wh, "lines": lines}
    )
    return_id = received["return_id"]
    reaches(stack, sku, wh, (5, 0))  # on hand, in quality control: nothing to promise

    inspected = {
        "lines": [
            {"sku": sku, "quantity": 1, "disposition": "restock"},
            {"sku": sku, "quantity": 4, "disposition": "quality_control"},
        ]
    }
    wms_post(stack, f"/wms/v1/returns/{return_id}/disposition", inspected, 200)
    reaches(stack, sku, wh, (5, 1))  # the restocked unit only; the 4 held stay out

    release = {
        "lines": [{"sku": sku, "quantity": 3}, {"sku": sku, "quantity": 1, "disposition": "scrap"}]
    }
    wms_post(stack, f"/wms/v1/returns/{return_id}/release", release, 200)
    reaches(stack, sku, wh, (4, 4))

    def booked() -> list[tuple[str, str, list[tuple[str, int]]]] | None:
        found = erp_postings(stack, wh)
        return found if len(found) == 2 else None

    postings = eventually(booked, timeout=30)
    assert postings, f"the ERP holds {erp_postings(stack, wh)}"
    (dispositioned_first, released) = [
        e.payload(ReturnDispositioned) for e in wms_events(stack, "return.dispositioned")
    ]
    assert released.released and not dispositioned_first.released
    assert sorted(postings) == sorted(
        [
            ("return_receipt", return_id, [(sku, 5)]),
            ("scrap", str(released.disposition_id), [(sku, -1)]),
        ]
    )

    # Every return event of this warehouse delivered again, three times, shuffled:
    # availability drops the replays (stock order), the ERP books nothing twice.
    again = [
        e
        for e in wms_events(stack, "return.dispositioned") + wms_events(stack, "return.received")
        if e.subject == f"warehouse:{wh}"
    ] * 3
    random.Random(17).shuffle(again)
    stack.publish(STREAM_WMS, again)
    # A later fact of the warehouse: once it shows, the replays before it were handled.
    marker = uid("SKU")
    wms_post(
        stack, "/wms/v1/receipts", {"warehouse_id": wh, "lines": [{"sku": marker, "quantity": 1}]}
    )
    reaches(stack, marker, wh, (1, 1))
    assert eventually(lambda: len(erp_postings(stack, wh)) == 3, timeout=30)
    assert position(stack, sku, wh) == (4, 4)
    assert sorted(p for p in erp_postings(stack, wh) if p[2][0][0] == sku) == sorted(postings)
