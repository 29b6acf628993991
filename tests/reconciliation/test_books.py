"""The books (decision 0028): every WMS movement posted to the ERP by availability's
``erp_postings`` consumer, across real ERP, WMS and availability servers sharing one
embedded log. A clean flow reconciles to zero exceptions; a posting removed from the
ERP's database is drift with its evidence; postings wait out an ERP outage and land
once, each."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import httpx
import pytest

from process_apis.availability.postings import plans
from shared.events.catalog import STREAM_WMS
from tests.reconciliation.helpers import adjusted, return_dispositioned
from tests.support.events import receipt_posted, shipment_dispatched
from tests.support.polling import eventually, wait_until
from tests.support.returns import authorize_return
from tests.support.stack import Stack, ThreadServer
from tests.support.tokens import TestIssuer

SERVICES = ["erp", "wms", "availability"]


@pytest.fixture
def stack(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    # An ERP outage must not leave postings waiting out the production backoff (30 s)
    # or the breaker's cool-down (5 s) in a test.
    monkeypatch.setenv("TALLY_EVENTS_RETRY_CAP_SECONDS", "0.5")
    monkeypatch.setenv("TALLY_BREAKER_COOLDOWN_SECONDS", "0.5")
    monkeypatch.setenv("TALLY_EVENTS_RETRY_BASE_SECONDS", "0.05")
    with Stack(tmp_path, TestIssuer(), SERVICES) as running:
        yield running


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def ok(response: httpx.Response, status: int = 201) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def create(client: httpx.Client, path: str, body: dict[str, Any]) -> Any:
    return ok(client.post(path, json=body, headers={"Idempotency-Key": uid("k")}))


def wms_on_hand(stack: Stack, wh: str) -> dict[str, int]:
    with stack.client("wms", "wms:read") as wms:
        page = ok(wms.get("/wms/v1/stock", params={"warehouse_id": wh, "limit": 100}), 200)
    found: dict[str, int] = {}
    for row in page["items"]:
        found[row["sku"]] = found.get(row["sku"], 0) + row["on_hand"]
    return found


def erp_on_hand(stack: Stack, wh: str) -> dict[str, int]:
    with stack.client("erp", "erp:read") as erp:
        page = ok(erp.get("/erp/v1/inventory", params={"warehouse_id": wh, "limit": 100}), 200)
    return {row["sku"]: row["on_hand"] for row in page["items"] if row["on_hand"]}


def projection_on_hand(stack: Stack, sku: str, wh: str) -> int:
    with stack.client("availability", "inventory:read") as availability:
        item = ok(availability.get(f"/availability/v1/items/{sku}"), 200)
    return sum(x["on_hand"] for x in item["locations"] if x["location_id"] == wh)


def books(stack: Stack, wh: str, skus: list[str]) -> tuple[dict[str, int], ...]:
    """On-hand per sku in the ERP, the WMS and the projection (zeros left out)."""
    wms = {s: q for s, q in wms_on_hand(stack, wh).items() if q}
    projection = {s: q for s in skus if (q := projection_on_hand(stack, s, wh))}
    return erp_on_hand(stack, wh), wms, projection


def wait_for_books_to_agree(stack: Stack, wh: str, skus: list[str]) -> None:
    def agree() -> bool:
        erp, wms, projection = books(stack, wh, skus)
        return erp == wms == projection

    if not eventually(agree, timeout=30):
        pytest.fail(
            f"the books differ (ERP, WMS, projection): {books(stack, wh, skus)};"
            f" ERP postings: {erp_postings(stack, wh)}"
        )


def erp_rejections(stack: Stack) -> float | None:
    """tally_circuit_rejected_total of availability's breaker to the ERP, once seen."""

    def seen() -> float | None:
        with stack.client("availability") as availability:
            for line in availability.get("/metrics").text.splitlines():
                if line.startswith('tally_circuit_rejected_total{downstream="erp"} '):
                    return float(line.split()[-1])
        return None

    found: float | None = eventually(seen, timeout=20)
    return found


def availability_postings(stack: Stack) -> list[tuple[str, str]]:
    """(kind, reference) of what availability recorded as posted."""
    with closing(sqlite3.connect(stack.data_dir / "availability.db")) as db:
        return db.execute("SELECT kind, reference FROM erp_postings").fetchall()


def erp_postings(stack: Stack, wh: str) -> list[tuple[str, str, list[tuple[str, int]]]]:
    """(kind, reference, lines) of every posting the ERP holds for ``wh``."""
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


def remove_posting(stack: Stack, kind: str, reference: str) -> None:
    """Test back door: the posting never happened (its rows and its on-hand effect)."""
    with closing(sqlite3.connect(stack.data_dir / "erp.db")) as db, db:
        posting_id, wh = db.execute(
            "SELECT posting_id, warehouse_id FROM inventory_postings"
            " WHERE kind = ? AND reference = ?",
            (kind, reference),
        ).fetchone()
        for sku, delta in db.execute(
            "SELECT sku, quantity_delta FROM inventory_posting_lines WHERE posting_id = ?",
            (posting_id,),
        ).fetchall():
            db.execute(
                "UPDATE financial_stock SET on_hand = on_hand - ?"
                " WHERE sku = ? AND warehouse_id = ?",
                (delta, sku, wh),
            )
        db.execute("DELETE FROM inventory_posting_lines WHERE posting_id = ?", (posting_id,))
        db.execute("DELETE FROM inventory_postings WHERE posting_id = ?", (posting_id,))


def reconcile(stack: Stack) -> dict[str, Any]:
    with stack.client("availability", "inventory:admin") as availability:
        return ok(  # type: ignore[no-any-return]
            availability.post(
                "/availability/v1/reconciliation/runs", json={"settlement_window_seconds": 0}
            ),
            200,
        )


def warehouse(stack: Stack) -> str:
    wh = uid("WH")
    with stack.client("wms", "wms:write") as wms:
        create(wms, "/wms/v1/warehouses", {"warehouse_id": wh, "name": "Books"})
    return wh


def receive(stack: Stack, wh: str, lines: list[tuple[str, int]], **documents: str) -> str:
    with stack.client("wms", "wms:write") as wms:
        receipt = create(
            wms,
            "/wms/v1/receipts",
            {
                "warehouse_id": wh,
                "lines": [{"sku": s, "quantity": q} for s, q in lines],
                **documents,
            },
        )
    return str(receipt["receipt_id"])


def ship(stack: Stack, wh: str, order_id: str, sku: str, quantity: int) -> str:
    with stack.client("wms", "wms:write") as wms:
        fo = create(
            wms,
            "/wms/v1/fulfillment-orders",
            {
                "order_id": order_id,
                "warehouse_id": wh,
                "lines": [{"sku": sku, "quantity": quantity}],
            },
        )
        fo_id = fo["fulfillment_order_id"]
        lines = [{"sku": sku, "quantity": quantity}]
        create(wms, f"/wms/v1/fulfillment-orders/{fo_id}/picks", {"lines": lines})
        shipment = create(
            wms,
            f"/wms/v1/fulfillment-orders/{fo_id}/shipments",
            {"carrier": "UPS", "tracking_number": uid("1Z"), "lines": lines},
        )
    return str(shipment["shipment_id"])


def adjust(stack: Stack, wh: str, reason: str, lines: list[tuple[str, int, str]]) -> str:
    with stack.client("wms", "wms:write") as wms:
        adjustment = create(
            wms,
            "/wms/v1/adjustments",
            {
                "warehouse_id": wh,
                "reason": reason,
                "lines": [{"sku": s, "quantity_delta": d, "status": st} for s, d, st in lines],
            },
        )
    return str(adjustment["adjustment_id"])


def purchase_order_with_asn(stack: Stack, wh: str, a: str, b: str) -> tuple[str, str]:
    """A PO for 6 of ``a`` and 5 of ``b``; an ASN ships the 6 of ``a``."""
    with stack.client("erp", "erp:write erp:read") as erp:
        po = create(
            erp,
            "/erp/v1/purchase-orders",
            {
                "supplier_id": "SUP-1",
                "lines": [
                    {"sku": a, "warehouse_id": wh, "quantity": 6},
                    {"sku": b, "warehouse_id": wh, "quantity": 5},
                ],
            },
        )
        asn = create(
            erp,
            "/erp/v1/asns",
            {
                "purchase_order_id": po["purchase_order_id"],
                "warehouse_id": wh,
                "expected_date": "2030-01-10",
                "lines": [{"sku": a, "quantity": 6}],
            },
        )
    return str(po["purchase_order_id"]), str(asn["asn_id"])


def test_a_clean_flow_is_posted_and_reconciles_to_zero_exceptions(stack: Stack) -> None:
    wh = warehouse(stack)
    a, b = uid("SKU"), uid("SKU")
    po_id, asn_id = purchase_order_with_asn(stack, wh, a, b)
    by_asn = receive(stack, wh, [(a, 6)], asn_id=asn_id, purchase_order_id=po_id)
    by_po = receive(stack, wh, [(b, 5)], purchase_order_id=po_id)
    order_id = uid("SO")
    shipment_id = ship(stack, wh, order_id, a, 2)
    lost = adjust(stack, wh, "lost", [(b, -1, "available")])
    # A status move is no financial movement: on_hand is the same before and after.
    to_hold = adjust(stack, wh, "quality_status", [(a, -1, "available"), (a, 1, "hold")])
    with stack.client("wms", "wms:write") as wms:
        rma_id = authorize_return(wms, order_id, [(a, 2)])
        returned = create(
            wms,
            "/wms/v1/returns",
            {"rma_id": rma_id, "warehouse_id": wh, "lines": [{"sku": a, "quantity": 2}]},
        )
        return_id = returned["return_id"]
        ok(
            wms.post(
                f"/wms/v1/returns/{return_id}/disposition",
                json={
                    "lines": [
                        {"sku": a, "quantity": 1, "disposition": "restock"},
                        {"sku": a, "quantity": 1, "disposition": "scrap"},
                    ]
                },
                headers={"Idempotency-Key": uid("d")},
            ),
            200,
        )

    assert wms_on_hand(stack, wh) == {a: 6 - 2 + 2 - 1, b: 5 - 1}
    wait_for_books_to_agree(stack, wh, [a, b])

    # The scrap is the disposition's posting (its DSP- id), not the return's.
    (disposition_id,) = [ref for kind, ref, _ in erp_postings(stack, wh) if kind == "scrap"]
    assert disposition_id.startswith("DSP-")
    assert sorted(erp_postings(stack, wh)) == sorted(
        [
            ("goods_receipt", by_asn, [(a, 6)]),
            ("goods_receipt", by_po, [(b, 5)]),
            ("goods_issue", shipment_id, [(a, -2)]),
            ("adjustment", lost, [(b, -1)]),
            ("return_receipt", return_id, [(a, 2)]),
            ("scrap", disposition_id, [(a, -1)]),
        ]
    ), f"nothing posted for the status move {to_hold}"
    # Each is recorded where it was posted from, so a replayed fact posts nothing.
    recorded = {(kind, ref) for kind, ref, _ in erp_postings(stack, wh)}
    assert set(availability_postings(stack)) >= recorded
    # The goods receipts closed the ASN and the PO's lines.
    with stack.client("erp", "erp:read") as erp:
        assert ok(erp.get(f"/erp/v1/asns/{asn_id}"), 200)["status"] == "received"
        po = ok(erp.get(f"/erp/v1/purchase-orders/{po_id}"), 200)
    received = {line["sku"]: (line["received"], line["open_quantity"]) for line in po["lines"]}
    assert received == {a: (6, 0), b: (5, 0)}

    report = reconcile(stack)
    assert report["exceptions"] == [] and report["settling"] == []
    assert report["checked"] >= 2


def test_a_posting_removed_from_the_erp_is_drift_with_its_evidence(stack: Stack) -> None:
    wh = warehouse(stack)
    sku = uid("SKU")
    receive(stack, wh, [(sku, 10)])
    shipment_id = ship(stack, wh, uid("SO"), sku, 3)
    wait_for_books_to_agree(stack, wh, [sku])
    assert reconcile(stack)["exceptions"] == []

    remove_posting(stack, "goods_issue", shipment_id)

    report = reconcile(stack)
    (drift,) = report["exceptions"]
    assert (drift["sku"], drift["location_id"], drift["status"]) == (sku, wh, "open")
    assert (drift["erp_on_hand"], drift["wms_on_hand"], drift["projection_on_hand"]) == (10, 7, 7)
    assert drift["largest_difference"] == 3
    evidence = drift["evidence"]
    assert (evidence["erp_on_hand"], evidence["wms_on_hand"]) == (10, 7)
    shipped = [m for m in evidence["recent_movements"] if m["reference"] == shipment_id]
    assert [m["on_hand_delta"] for m in shipped if m["on_hand_delta"]] == [-3]
    # Nothing re-posts it behind the operator's back: the drift stays until resolved.
    assert [p for p in erp_postings(stack, wh) if p[0] == "goods_issue"] == []


def test_postings_wait_for_the_erp_and_land_once_each(stack: Stack) -> None:
    wh = warehouse(stack)
    sku = uid("SKU")
    stack.servers["erp"].stop()
    try:
        receipts = [receive(stack, wh, [(sku, 4)]) for _ in range(3)]
        shipment_id = ship(stack, wh, uid("SO"), sku, 5)
        # The projection follows the WMS meanwhile; the postings wait, and the breaker
        # to the ERP refuses calls at once while it is open.
        wait_until(lambda: projection_on_hand(stack, sku, wh) == 7, what="projection to follow")
        assert erp_rejections(stack) is not None
        assert receipts[0] not in {reference for _, reference in availability_postings(stack)}
    finally:
        erp = ThreadServer(stack.app("erp"), stack.ports["erp"])
        erp.start()
        stack.servers["erp"] = erp

    wait_for_books_to_agree(stack, wh, [sku])
    postings = erp_postings(stack, wh)
    assert sorted(postings) == sorted(
        [
            *(("goods_receipt", r, [(sku, 4)]) for r in receipts),
            ("goods_issue", shipment_id, [(sku, -5)]),
        ]
    )
    assert erp_on_hand(stack, wh) == {sku: 7}
    assert reconcile(stack)["exceptions"] == []


def erp_calls(stack: Stack, route: str) -> float:
    """How many POSTs of ``route`` the ERP answered 200/201 (its /metrics)."""
    total = 0.0
    with stack.client("erp") as erp:
        for line in erp.get("/metrics").text.splitlines():
            if (
                line.startswith("tally_http_request_seconds_count{")
                and 'service="erp"' in line
                and 'method="POST"' in line
                and f'route="{route}"' in line
            ):
                total += float(line.split()[-1])
    return total


def test_the_facts_of_one_batch_are_posted_in_one_call(stack: Stack) -> None:
    """A bus batch of stock facts costs the ERP one call, not one per fact; each fact is
    still posted once, under its own key."""
    wh = warehouse(stack)
    sku = uid("SKU")
    single, batch = "/erp/v1/inventory/postings", "/erp/v1/inventory/postings/batch"
    singles_before, batches_before = erp_calls(stack, single), erp_calls(stack, batch)
    facts = [receipt_posted(wh, [(sku, n)], sequence=100 + n) for n in range(1, 7)]
    stack.publish(STREAM_WMS, facts)
    wait_until(
        lambda: len(erp_postings(stack, wh)) == len(facts), what="every fact posted", timeout=30
    )
    assert erp_on_hand(stack, wh) == {sku: sum(range(1, 7))}
    calls = (erp_calls(stack, single) - singles_before, erp_calls(stack, batch) - batches_before)
    assert calls[1] >= 1 and sum(calls) < len(facts), calls


def dead_letters(stack: Stack, group: str) -> list[tuple[str, int]]:
    """(reason, deliveries) of ``group``'s dead letters on the WMS stream."""
    with closing(sqlite3.connect(stack.bus_path())) as db:
        return db.execute(
            "SELECT reason, deliveries FROM dead_letters WHERE stream = ? AND grp = ?",
            (STREAM_WMS, group),
        ).fetchall()


def test_a_refusal_is_dead_lettered_and_a_duplicate_is_done(stack: Stack) -> None:
    wh = warehouse(stack)
    sku = uid("SKU")
    # The ERP knows no such ASN: 422, retried, then dead-lettered (replayable once the
    # ASN exists); the facts behind it are posted all the same.
    refused = receive(stack, wh, [(sku, 3)], asn_id="ASN-unknown")
    later = receive(stack, wh, [(sku, 2)])
    ((reason, deliveries),) = wait_until(
        lambda: dead_letters(stack, "erp_postings"), timeout=30, what="the dead letter"
    )
    assert "unknown-asn" in reason and refused in reason and deliveries == 5
    assert erp_postings(stack, wh) == [("goods_receipt", later, [(sku, 2)])]
    assert erp_on_hand(stack, wh) == {sku: 2}

    # Booked in the ERP by hand first (another key): the consumer's 409 means done.
    by_hand = uid("RCV")
    with stack.client("erp", "erp:write") as erp:
        create(
            erp,
            "/erp/v1/inventory/postings",
            {
                "kind": "goods_receipt",
                "reference": by_hand,
                "warehouse_id": wh,
                "lines": [{"sku": sku, "quantity_delta": 4}],
            },
        )
    stack.publish(STREAM_WMS, [receipt_posted(wh, [(sku, 4)], receipt_id=by_hand, sequence=99)])
    wait_until(
        lambda: ("goods_receipt", by_hand) in availability_postings(stack),
        what="the duplicate recorded as posted",
    )
    assert erp_on_hand(stack, wh) == {sku: 6}
    assert dead_letters(stack, "erp_postings") == [(reason, deliveries)]


def test_what_each_fact_posts() -> None:
    wh = "WH-1"
    move = adjusted(1, wh, "quality_status", [("A", -2, "available", "L1"), ("A", 2, "hold", None)])
    assert plans.adjustment(move) is None, "a status move is no financial movement"
    mixed = adjusted(
        2,
        wh,
        "correction",
        [
            ("A", -1, "available", None),
            ("A", 1, "quality_control", None),
            ("B", 3, "damaged", None),
        ],
    )
    plan = plans.adjustment(mixed)
    assert plan is not None and (plan.kind, plan.lines) == ("adjustment", [("B", 3)])
    out = return_dispositioned(
        3,
        wh,
        "RET-1",
        [("A", 2, "restock"), ("A", 1, "damaged"), ("B", 1, "scrap"), ("A", 4, "return_to_vendor")],
    )
    scrap = plans.scrap(out)
    assert scrap is not None
    assert (scrap.kind, scrap.reference, scrap.lines) == (
        "scrap",
        "RET-1-scrap",
        [("A", -4), ("B", -1)],
    )
    assert scrap.idempotency_key == "posting:scrap:RET-1-scrap"
    kept = return_dispositioned(4, wh, "RET-2", [("A", 2, "restock"), ("A", 1, "damaged")])
    assert plans.scrap(kept) is None
    # A goods issue names the order it ships (billing invoices on the ERP's event of
    # it), under a key of its own: a retry of a posting made before order ids were
    # passed meets the ERP's 409 duplicate-posting, not a key reused with another body.
    shipped = shipment_dispatched("ORD-1", wh, [("B", 2), ("A", 1), ("B", 1)], shipment_id="SHP-9")
    issue = plans.shipment(shipped)
    assert issue is not None
    assert issue.body() == {
        "kind": "goods_issue",
        "reference": "SHP-9",
        "warehouse_id": wh,
        "lines": [{"sku": "A", "quantity_delta": -1}, {"sku": "B", "quantity_delta": -3}],
        "order_id": "ORD-1",
    }
    assert issue.idempotency_key == "posting:goods_issue:SHP-9:ORD-1"
