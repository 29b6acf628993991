"""The accuracy report: every figure read back from the platform after the day (the
order, warehouse, billing and availability APIs through the gateway, the event log and
the availability database), never from the actors' own counters."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tally.simulate.api import Party
from tally.simulate.plan import Day

if TYPE_CHECKING:
    from shared.events.bus import DeadLetter

CREDITED = ("restocked", "damaged", "returned_to_vendor")  # scrap is not credited (0034)
# An order in one of these is still on its way to shipped, delivered, completed,
# cancelled or rejected.
MOVING = (
    "pending",
    "accepted",
    "on_hold",
    "backordered",
    "partially_allocated",
    "released",
    "partially_shipped",
)
UNIT_FIGURES = (
    "quantity",
    "allocated",
    "backordered",
    "shipped",
    "invoiced",
    "cancelled",
    "returned",
)
UNSETTLED_SHOWN = 20
MUST_BE_ZERO = (
    "orders_beyond_plan",
    "orders_unsettled",
    "oversold_positions",
    "over_shipped_lines",
    "duplicate_invoices",
    "invoiced_not_shipped_units",
    "shipped_not_invoiced_units",
    "duplicate_credit_notes",
    "returns_credit_mismatches",
    "shipments_lost_between_wms_and_orders",
    "inbound_not_received_units",
    "dead_lettered_events",
    "reconciliation_exceptions",
    "ledger_rebuild_drift",
)


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _percentiles(seconds: list[float]) -> dict[str, float | int]:
    if not seconds:
        return {"count": 0}
    ordered = sorted(seconds)

    def at(share: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 3)

    return {"count": len(ordered), "p50": at(0.5), "p95": at(0.95), "p99": at(0.99), "max": at(1.0)}


async def orders_of(staff: Party, day: Day) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for customer in day.customers:
        found += await staff.pages("/orders/v1/orders", {"customer_id": customer.customer_id})
    return found


async def _by_order_ids(staff: Party, path: str, order_ids: list[str]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for start in range(0, len(order_ids), 100):
        found += await staff.pages(path, {"order_id": order_ids[start : start + 100]})
    return found


async def inbound(staff: Party, day: Day, report: dict[str, Any]) -> None:
    """The day's purchase order as the ERP holds it: every unit ordered came in (its
    ASN received, nothing left open or in transit)."""
    supplier = f"SIM-{day.tag}-SUPPLIER"
    ours = [
        po
        for po in await staff.pages("/erp/v1/purchase-orders")
        if po.get("supplier_id") == supplier
    ]
    lines = [line for po in ours for line in po["lines"]]
    report["inbound"] = {
        "purchase_orders": len(ours),
        "ordered_units": sum(int(line["ordered"]) for line in lines),
        "received_units": sum(int(line["received"]) for line in lines),
    }
    report["inbound_not_received_units"] = sum(
        int(line["open_quantity"]) + int(line["in_transit"]) for line in lines
    )


async def build_report(
    staff: Party,
    day: Day,
    *,
    data_dir: Path | None,
    dead_letters_before: frozenset[str],
    wall_seconds: float,
) -> dict[str, Any]:
    orders = await orders_of(staff, day)
    order_ids = [o["order_id"] for o in orders]
    report: dict[str, Any] = {"seed": day.seed, "tag": day.tag, "planned_lines": day.lines}

    # More orders of a customer than it ever meant to place: an order placed twice.
    planned = Counter(i.customer_id for i in day.intents)
    placed = Counter(o["customer_id"] for o in orders)
    report["orders_beyond_plan"] = sum(max(0, placed[c] - planned[c]) for c in placed)
    statuses = Counter(o["status"] for o in orders)
    # Still moving once the day has settled (or gave up waiting): stuck, never shipped.
    report["orders_unsettled"] = sum(statuses[status] for status in MOVING)
    lines = [line for o in orders for line in o["lines"]]
    totals: Counter[str] = Counter()
    for line in lines:
        for name in UNIT_FIGURES:
            totals[name] += int(line.get(name, 0))
    report["orders"] = {"count": len(orders), "by_status": dict(sorted(statuses.items()))}
    # The first of them as the order service holds them: where an operator starts looking.
    report["unsettled_orders"] = [
        {
            "order_id": o["order_id"],
            "status": o["status"],
            "lines": [{k: line.get(k, 0) for k in ("sku", *UNIT_FIGURES)} for line in o["lines"]],
        }
        for o in orders
        if o["status"] in MOVING
    ][:UNSETTLED_SHOWN]
    await _where_they_stopped(staff, report["unsettled_orders"])
    report["lines"] = {"count": len(lines), "units": dict(totals)}
    report["over_shipped_lines"] = sum(
        1 for x in lines if x["shipped"] > x["quantity"] - x.get("cancelled", 0)
    )
    report["invoiced_not_shipped_units"] = sum(max(0, x["invoiced"] - x["shipped"]) for x in lines)
    report["shipped_not_invoiced_units"] = sum(max(0, x["shipped"] - x["invoiced"]) for x in lines)

    invoices = await _by_order_ids(staff, "/billing/v1/invoices", order_ids)
    per_shipment = Counter(i.get("shipment_id") or i["invoice_id"] for i in invoices)
    report["invoices"] = {
        "count": len(invoices),
        "by_status": dict(Counter(i["status"] for i in invoices)),
    }
    report["duplicate_invoices"] = sum(n - 1 for n in per_shipment.values() if n > 1)

    wms_shipped: dict[tuple[str, str], int] = defaultdict(int)
    for fo in await _by_order_ids(staff, "/wms/v1/fulfillment-orders", order_ids):
        for line in fo["lines"]:
            wms_shipped[(fo["order_id"], line["sku"])] += int(line.get("shipped", 0))
    order_shipped: dict[tuple[str, str], int] = defaultdict(int)
    for o in orders:
        for line in o["lines"]:
            order_shipped[(o["order_id"], line["sku"])] += int(line["shipped"])
    report["shipments_lost_between_wms_and_orders"] = sum(
        1 for k in set(wms_shipped) | set(order_shipped) if wms_shipped[k] != order_shipped[k]
    )

    await _returns_and_credits(staff, day, order_ids, report)
    await inbound(staff, day, report)
    await _stock(staff, day, report)
    await _flows(staff, orders, invoices, report)
    await _platform_checks(staff, day, data_dir, dead_letters_before, report)
    report["wall_seconds"] = round(wall_seconds, 1)
    report["lines_per_second"] = round(len(lines) / wall_seconds, 1) if wall_seconds else None
    report["all_zero"] = all(report.get(name) == 0 for name in MUST_BE_ZERO)
    return report


async def _where_they_stopped(staff: Party, unsettled: list[dict[str, Any]]) -> None:
    """Each unsettled order's status history (with causes) and its fulfillment orders at
    the warehouses, as an operator would look them up next."""
    for order in unsettled:
        history = await staff.pages(f"/orders/v1/orders/{order['order_id']}/history")
        order["history"] = [f"{h.get('from') or '-'} -> {h['to']}: {h['cause']}" for h in history]
        fulfillments = await staff.pages(
            "/wms/v1/fulfillment-orders", {"order_id": order["order_id"]}
        )
        order["fulfillment_orders"] = [
            {
                "fulfillment_order_id": fo["fulfillment_order_id"],
                "status": fo["status"],
                "lines": [
                    {k: line.get(k, 0) for k in ("sku", "quantity", "picked", "shipped")}
                    for line in fo["lines"]
                ],
            }
            for fo in fulfillments
        ]


async def returns_and_credits(staff: Party, day: Day, order_ids: list[str]) -> dict[str, Any]:
    """The day's RMAs and credit notes: duplicates per (invoice, RMA, reason), and the
    RMAs whose creditable units (restocked, damaged, returned to vendor) differ from the
    units their credit notes credit."""
    rmas: list[dict[str, Any]] = []
    for customer in day.customers:
        rmas += await staff.pages("/orders/v1/returns", {"customer_id": customer.customer_id})
    notes: list[dict[str, Any]] = []
    for customer in day.customers:  # credit notes are listed by customer or invoice
        notes += await staff.pages(
            "/billing/v1/credit-notes", {"customer_id": customer.customer_id}
        )
    ours = set(order_ids)
    notes = [n for n in notes if n["order_id"] in ours]
    per_cause = Counter(
        (n["invoice_id"], n.get("rma_id"), n["reason"]) for n in notes if n.get("rma_id")
    )
    credited: dict[str, int] = defaultdict(int)
    for note in notes:
        if note.get("rma_id"):
            credited[note["rma_id"]] += sum(int(x["quantity"]) for x in note.get("lines", []))
    mismatches = 0
    for rma in rmas:
        creditable = sum(int(line.get(k, 0)) for line in rma["lines"] for k in CREDITED)
        if creditable != credited.get(rma["rma_id"], 0):
            mismatches += 1
    return {
        "rmas": rmas,
        "notes": notes,
        "duplicates": sum(n - 1 for n in per_cause.values() if n > 1),
        "mismatches": mismatches,
    }


async def _returns_and_credits(
    staff: Party, day: Day, order_ids: list[str], report: dict[str, Any]
) -> None:
    found = await returns_and_credits(staff, day, order_ids)
    rmas, notes = found["rmas"], found["notes"]
    report["duplicate_credit_notes"] = found["duplicates"]
    report["returns"] = {
        "rmas": len(rmas),
        "by_status": dict(Counter(r["status"] for r in rmas)),
        "credit_notes": len(notes),
    }
    report["returns_credit_mismatches"] = found["mismatches"]


async def _stock(staff: Party, day: Day, report: dict[str, Any]) -> None:
    """An oversell is a position whose commitments (allocated and held for carts)
    exceed what is on hand."""
    skus = [item.sku for item in day.items]
    oversold = 0
    for start in range(0, len(skus), 100):
        answer = await staff.get(
            "/availability/v2/items", params={"sku": skus[start : start + 100]}
        )
        answer.raise_for_status()
        for item in answer.json()["items"]:
            for location in item["locations"]:
                for lot in location["lots"]:
                    b = lot["buckets"]
                    if b["allocated"] + b["reserved"] > b["on_hand"]:
                        oversold += 1
    report["oversold_positions"] = oversold


async def _flows(
    staff: Party,
    orders: list[dict[str, Any]],
    invoices: list[dict[str, Any]],
    report: dict[str, Any],
) -> None:
    """Latency per flow from the platform's own stamps: the order history (accepted,
    released, shipped) and the invoices' issue time against the shipments'."""
    histories: dict[str, list[dict[str, Any]]] = {}
    ids = [o["order_id"] for o in orders]
    for start in range(0, len(ids), 100):
        answer = await staff.get(
            "/orders/v1/history", params={"order_id": ids[start : start + 100]}
        )
        answer.raise_for_status()
        for item in answer.json()["items"]:
            histories[item["order_id"]] = item["entries"]
    to_release: list[float] = []
    to_ship: list[float] = []
    backorder_waits: list[float] = []
    for order in orders:
        created = _when(order.get("created_at"))
        first: dict[str, datetime] = {}
        for entry in histories.get(order["order_id"], []):
            at = _when(entry["at"])
            if at is not None:
                first.setdefault(entry["to"], at)
        released = first.get("released")
        shipped = first.get("shipped") or first.get("partially_shipped")
        if created and released:
            to_release.append((released - created).total_seconds())
        if released and shipped:
            to_ship.append((shipped - released).total_seconds())
        waited = first.get("backordered") or first.get("partially_allocated")
        if waited and released and released > waited:
            backorder_waits.append((released - waited).total_seconds())
    shipped_at = {
        s["shipment_id"]: _when(s.get("shipped_at")) for o in orders for s in o.get("shipments", [])
    }
    to_invoice = [
        (issued - dispatched).total_seconds()
        for i in invoices
        if (issued := _when(i.get("issued_at")))
        and (dispatched := shipped_at.get(i.get("shipment_id") or ""))
    ]
    report["backorders_filled"] = _percentiles(backorder_waits)
    report["latency_seconds"] = {
        "accepted_to_released": _percentiles(to_release),
        "released_to_shipped": _percentiles(to_ship),
        "shipped_to_invoiced": _percentiles(to_invoice),
    }


async def _platform_checks(
    staff: Party,
    day: Day,
    data_dir: Path | None,
    dead_letters_before: frozenset[str],
    report: dict[str, Any],
) -> None:
    run = await staff.post("/availability/v1/reconciliation/runs", {})
    run.raise_for_status()
    ours = {item.sku for item in day.items}
    exceptions = [x for x in run.json()["exceptions"] if x["sku"] in ours]
    report["reconciliation_exceptions"] = len(exceptions)
    if data_dir is not None:
        dead = [
            d for d in await dead_letters(data_dir) if d.dead_letter_id not in dead_letters_before
        ]
        report["dead_lettered_events"] = len(dead)
        # Each one named, so the day's reader (and a failed CI run) knows where to look.
        report["dead_letters"] = [
            {
                "group": d.group,
                "stream": d.stream,
                "event_type": d.event.type,
                "event_id": d.event.id,
                "deliveries": d.deliveries,
                "reason": d.reason[:500],
            }
            for d in dead
        ]
        report["ledger_rebuild_drift"] = len(await ledger_drift(data_dir))
    else:  # a remote platform: its operators run `tally events dlq list` and the rebuild check
        report["dead_lettered_events"] = None
        report["dead_letters"] = None
        report["ledger_rebuild_drift"] = None


async def dead_letters(data_dir: Path) -> list[DeadLetter]:
    from shared.events.bus import open_bus
    from shared.settings import bus_url_for

    bus = open_bus(bus_url_for(data_dir))
    try:
        return await bus.dead_letters(limit=100_000)
    finally:
        await bus.close()


async def ledger_drift(data_dir: Path) -> list[dict[str, Any]]:
    from shared.settings import database_url_for
    from tally.commands.reconcile import _rebuild_drift

    return await _rebuild_drift(database_url_for("availability", data_dir))


def summary_rows(report: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """(figure, value, ok) for the printed table; ok is None for figures with no target."""
    rows: list[tuple[str, str, bool | None]] = [
        ("orders", str(report["orders"]["count"]), None),
        ("order lines", str(report["lines"]["count"]), None),
        (
            "orders by status",
            ", ".join(f"{k} {v}" for k, v in report["orders"]["by_status"].items()),
            None,
        ),
        (
            "units ordered / shipped / invoiced",
            "{quantity} / {shipped} / {invoiced}".format(**report["lines"]["units"]),
            None,
        ),
        ("invoices", str(report["invoices"]["count"]), None),
        (
            "RMAs / credit notes",
            f"{report['returns']['rmas']} / {report['returns']['credit_notes']}",
            None,
        ),
        ("backorders filled", str(report["backorders_filled"].get("count", 0)), None),
    ]
    for name in MUST_BE_ZERO:
        value = report.get(name)
        rows.append(
            (
                name.replace("_", " "),
                "n/a" if value is None else str(value),
                None if value is None else value == 0,
            )
        )
    for flow, figures in report["latency_seconds"].items():
        text = (
            "-"
            if not figures.get("count")
            else f"p50 {figures['p50']} s, p99 {figures['p99']} s (n={figures['count']})"
        )
        rows.append((flow.replace("_", " "), text, None))
    rows.append(("lines per second", str(report["lines_per_second"]), None))
    if report.get("chaos"):
        kills = report["chaos"]["kills"]
        rows.append(
            (
                "services killed (chaos)",
                ", ".join(f"{k} {v}" for k, v in kills.items()) or "none",
                None,
            )
        )
    return rows
