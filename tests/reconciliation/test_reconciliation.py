"""Reconciliation across real ERP, WMS and availability servers (one embedded log)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.polling import wait_until
from tests.support.stack import Stack
from tests.support.tokens import TestIssuer

SERVICES = ["erp", "wms", "availability"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # These tests post to the ERP by hand (an ERP lagging the WMS): availability's own
    # postings (decision 0028, tests/reconciliation/test_books.py) stay off.
    with pytest.MonkeyPatch.context() as env:
        env.setenv("TALLY_ERP_POSTINGS", "off")
        with Stack(tmp_path_factory.mktemp("reconcile"), TestIssuer(), SERVICES) as running:
            yield running


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def ok(response: httpx.Response, status: int = 201) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def run(stack: Stack, **body: int) -> dict[str, Any]:
    with stack.client("availability", "inventory:admin") as availability:
        return ok(availability.post("/availability/v1/reconciliation/runs", json=body), 200)


def position(stack: Stack, sku: str) -> dict[str, Any]:
    with stack.client("availability", "inventory:read") as availability:
        body = ok(availability.get(f"/availability/v1/items/{sku}"), 200)
    return body


def post_to_erp(stack: Stack, kind: str, reference: str, wh: str, sku: str, delta: int) -> None:
    with stack.client("erp", "erp:write") as erp:
        ok(
            erp.post(
                "/erp/v1/inventory/postings",
                json={
                    "kind": kind,
                    "reference": reference,
                    "warehouse_id": wh,
                    "lines": [{"sku": sku, "quantity_delta": delta}],
                },
                headers={"Idempotency-Key": uid("gp")},
            )
        )


def mine(report: dict[str, Any], sku: str) -> tuple[list[Any], list[Any]]:
    return (
        [x for x in report["exceptions"] if x["sku"] == sku],
        [x for x in report["settling"] if x["sku"] == sku],
    )


def test_pick_before_the_erp_posts_then_drift_after_the_window(stack: Stack) -> None:
    sku, wh = uid("SKU"), uid("WH")
    with stack.client("wms", "wms:write wms:read") as wms:
        ok(wms.post("/wms/v1/warehouses", json={"warehouse_id": wh, "name": "W"}))
        receipt = ok(
            wms.post(
                "/wms/v1/receipts",
                json={"warehouse_id": wh, "lines": [{"sku": sku, "quantity": 10, "lot": "L1"}]},
                headers={"Idempotency-Key": uid("r")},
            )
        )
        post_to_erp(stack, "goods_receipt", receipt["receipt_id"], wh, sku, 10)
        wait_until(lambda: position(stack, sku)["available_to_promise"] == 10, what="receipt")
        fo = ok(
            wms.post(
                "/wms/v1/fulfillment-orders",
                json={
                    "order_id": uid("SO"),
                    "warehouse_id": wh,
                    "lines": [{"sku": sku, "quantity": 4}],
                },
                headers={"Idempotency-Key": uid("fo")},
            )
        )
        fo_id = fo["fulfillment_order_id"]
        ok(
            wms.post(
                f"/wms/v1/fulfillment-orders/{fo_id}/picks",
                json={"lines": [{"sku": sku, "quantity": 4}]},
                headers={"Idempotency-Key": uid("p")},
            )
        )
        # The WMS knows the pick; the ERP has posted nothing: picked units are not sellable.
        wait_until(lambda: position(stack, sku)["available_to_promise"] == 6, what="pick")
        exceptions, settling = mine(run(stack, settlement_window_seconds=0), sku)
        assert (exceptions, settling) == ([], []), "a pick moves no stock out of the building"

        shipment = ok(
            wms.post(
                f"/wms/v1/fulfillment-orders/{fo_id}/shipments",
                json={
                    "carrier": "UPS",
                    "tracking_number": "1Z9",
                    "lines": [{"sku": sku, "quantity": 4}],
                },
                headers={"Idempotency-Key": uid("s")},
            )
        )
        assert shipment["lines"] == [{"sku": sku, "quantity": 4, "lot": "L1"}]
    wait_until(
        lambda: position(stack, sku)["locations"][0]["on_hand"] == 6, what="shipment applied"
    )

    # Inside the settlement window the ERP's missing goods issue is in flight, not drift.
    exceptions, settling = mine(run(stack, settlement_window_seconds=3600), sku)
    assert exceptions == []
    (pending,) = settling
    assert (pending["erp_on_hand"], pending["wms_on_hand"], pending["projection_on_hand"]) == (
        10,
        6,
        6,
    )
    assert {f["system"] for f in pending["in_flight"]} >= {"wms", "projection"}

    # A threshold above the difference raises nothing either.
    assert mine(run(stack, settlement_window_seconds=0, threshold=4), sku) == ([], [])

    # Past the window it is drift: an exception with its evidence.
    (raised,), _ = mine(run(stack, settlement_window_seconds=0), sku)
    assert (raised["erp_on_hand"], raised["wms_on_hand"], raised["projection_on_hand"]) == (
        10,
        6,
        6,
    )
    assert raised["largest_difference"] == 4 and raised["status"] == "open"
    assert raised["evidence"]["recent_movements"][0]["reason"] == "shipment"
    # A second run refreshes the same open exception rather than adding one.
    (again,), _ = mine(run(stack, settlement_window_seconds=0), sku)
    assert again["exception_id"] == raised["exception_id"]

    with stack.client("availability", "inventory:admin") as availability:
        listed = ok(
            availability.get(
                "/availability/v1/reconciliation/exceptions", params={"sku": sku, "status": "open"}
            ),
            200,
        )
        assert [x["exception_id"] for x in listed["items"]] == [raised["exception_id"]]
        resolved = ok(
            availability.post(
                f"/availability/v1/reconciliation/exceptions/{raised['exception_id']}/resolve",
                json={"reason": "goods issue posted late in the ERP"},
            ),
            200,
        )
        assert resolved["status"] == "resolved"
        assert resolved["resolution"] == "goods issue posted late in the ERP"
        missing = availability.post(
            "/availability/v1/reconciliation/exceptions/RX-none/resolve", json={"reason": "x"}
        )
        assert missing.status_code == 404
        empty_reason = availability.post(
            f"/availability/v1/reconciliation/exceptions/{raised['exception_id']}/resolve",
            json={"reason": ""},
        )
        assert empty_reason.status_code == 400

    # Once the ERP posts the goods issue the three agree.
    post_to_erp(stack, "goods_issue", shipment["shipment_id"], wh, sku, -4)
    assert mine(run(stack, settlement_window_seconds=0), sku) == ([], [])


def test_reconciliation_scopes(stack: Stack) -> None:
    # Reconciliation is administration (ADR 0021): the transaction scopes reach none of it.
    with stack.client("availability", "inventory:read inventory:write") as partner:
        assert partner.post("/availability/v1/reconciliation/runs", json={}).status_code == 403
        listed = partner.get("/availability/v1/reconciliation/exceptions", params={"limit": 1})
        assert listed.status_code == 403
        assert listed.json()["type"] == "/problems/insufficient-scope"
    with stack.client("availability", "inventory:admin") as writer:
        page = writer.get("/availability/v1/reconciliation/exceptions", params={"limit": 1})
        assert page.status_code == 200
        bad = writer.get("/availability/v1/reconciliation/exceptions", params={"status": "x"})
        assert bad.status_code == 400
        refused = writer.post(
            "/availability/v1/reconciliation/runs", json={"settlement_window_seconds": -1}
        )
        assert refused.status_code == 400
