"""The availability projection fed by the WMS's and the ERP's facts."""

from __future__ import annotations

from typing import Any

from litestar.testing import TestClient

from shared.settings import Settings
from tests.availability.helpers import (
    allocate,
    apply_and_wait,
    item,
    ledger_drift,
    movements,
    publish,
)
from tests.reconciliation import helpers as facts
from tests.reconciliation.helpers import buckets
from tests.support.polling import eventually


def test_picked_stock_never_shows_as_available(client: TestClient[Any], settings: Settings) -> None:
    """The seed scenario: the WMS confirms the pick before the ERP posts any goods
    issue. The allocated units stay allocated until they ship; a pick no allocation
    covers is held as external_committed until it ships."""
    apply_and_wait(client, settings, facts.receipt(1, "WH1", [("A", 10, "L1")]))
    assert allocate(client, "SO-1", [("A", 4)]).status_code == 201
    apply_and_wait(client, settings, facts.pick(2, "SO-1", "WH1", [("A", 4, "L1")]))
    a = item(client, "A")
    assert a["available_to_promise"] == 6
    assert buckets(a, "WH1", "on_hand", "allocated", "external_committed") == (10, 4, 0)

    # An order the platform never allocated is picked in the WMS: 3 units held.
    apply_and_wait(client, settings, facts.pick(3, "SO-X", "WH1", [("A", 3, "L1")]))
    assert item(client, "A")["available_to_promise"] == 3
    assert buckets(item(client, "A"), "WH1", "external_committed") == (3,)

    apply_and_wait(
        client,
        settings,
        facts.shipment(4, "SO-1", "WH1", [("A", 4, "L1")]),
        facts.shipment(5, "SO-X", "WH1", [("A", 3, "L1")]),
    )
    a = item(client, "A")
    assert buckets(a, "WH1", "on_hand", "allocated", "external_committed") == (3, 0, 0)
    assert a["available_to_promise"] == 3
    assert ledger_drift(settings) == {}


def test_a_pick_after_a_partial_shipment_is_still_covered_by_the_allocation(
    client: TestClient[Any], settings: Settings
) -> None:
    """Allocate 3, pick 2, ship 2, pick the last 1: that unit is the allocation's,
    not an external claim, so ATP is 10 - 3 = 7 until it ships."""
    apply_and_wait(client, settings, facts.receipt(1, "WH1", [("A", 10, "L1")]))
    assert allocate(client, "SO-1", [("A", 3)]).status_code == 201
    apply_and_wait(
        client,
        settings,
        facts.pick(2, "SO-1", "WH1", [("A", 2, "L1")]),
        facts.shipment(3, "SO-1", "WH1", [("A", 2, "L1")]),
        facts.pick(4, "SO-1", "WH1", [("A", 1, "L1")]),
    )
    a = item(client, "A")
    assert buckets(a, "WH1", "on_hand", "allocated", "external_committed") == (8, 1, 0)
    assert a["available_to_promise"] == 7
    assert ledger_drift(settings) == {}


def test_adjustments_and_quality_statuses(client: TestClient[Any], settings: Settings) -> None:
    apply_and_wait(
        client,
        settings,
        facts.receipt(1, "WH1", [("A", 10, None)]),
        facts.adjusted(
            2,
            "WH1",
            "quality_status",
            [("A", -5, "available", None), ("A", 2, "hold", None), ("A", 3, "damaged", None)],
        ),
        facts.adjusted(3, "WH1", "cycle_count", [("A", -1, "available", None)]),
    )
    a = item(client, "A")
    assert buckets(a, "WH1", "on_hand", "hold", "damaged") == (9, 2, 3)
    assert a["available_to_promise"] == 4
    assert [m["reason"] for m in movements(client, "A")][-2:] == ["quality_status", "cycle_count"]
    assert ledger_drift(settings) == {}


def test_returns_go_through_quality_control(client: TestClient[Any], settings: Settings) -> None:
    apply_and_wait(
        client,
        settings,
        facts.return_received(1, "WH1", "RET-1", [("A", 10)]),
    )
    assert buckets(item(client, "A"), "WH1", "on_hand", "quality_control") == (10, 10)
    assert item(client, "A")["available_to_promise"] == 0
    apply_and_wait(
        client,
        settings,
        facts.return_dispositioned(
            2,
            "WH1",
            "RET-1",
            [
                ("A", 4, "restock"),
                ("A", 3, "damaged"),
                ("A", 2, "scrap"),
                ("A", 1, "return_to_vendor"),
            ],
        ),
    )
    a = item(client, "A")
    assert buckets(a, "WH1", "on_hand", "quality_control", "damaged") == (7, 0, 3)
    assert a["available_to_promise"] == 4
    reasons = {m["reason"] for m in movements(client, "A")}
    assert {"return_received", "return_restock", "return_damaged", "return_scrap"} <= reasons
    assert ledger_drift(settings) == {}


def test_purchase_orders_and_asns_feed_on_order_and_incoming(
    client: TestClient[Any], settings: Settings
) -> None:
    publish(settings, facts.po_changed("PO-1", 1, [("A", "WH1", 10)]), stream="tally.erp")
    assert eventually(lambda: buckets(item(client, "A"), "WH1", "on_order") == (10,))
    # The ASN ships 6: open goes 10 -> 4 (a new PO version), incoming +6. Delivered
    # out of order: the PO's version 2 waits for nothing, the ASN's receipt for its ship.
    publish(
        settings,
        facts.asn_received("ASN-1", "PO-1", "WH1", [("A", 6)]),
        facts.po_changed("PO-1", 2, [("A", "WH1", 4)]),
        facts.asn_shipped("ASN-1", "PO-1", "WH1", [("A", 6)]),
        stream="tally.erp",
    )
    assert eventually(
        lambda: (
            buckets(item(client, "A"), "WH1", "on_order", "incoming") == (4, 0)
            and len([m for m in movements(client, "A") if m["reason"] == "asn_received"]) == 1
        )
    )
    publish(
        settings,
        facts.po_changed("PO-1", 3, [("A", "WH1", 4)], status="cancelled"),
        stream="tally.erp",
    )
    assert eventually(lambda: buckets(item(client, "A"), "WH1", "on_order") == (0,))
    assert item(client, "A")["available_to_promise"] == 0
    reasons = [m["reason"] for m in movements(client, "A")]
    assert reasons.count("purchase_order") == 3 and reasons.count("asn_shipped") == 1
    assert ledger_drift(settings) == {}
