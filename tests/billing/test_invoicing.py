"""One ERP invoice per shipment, however often its facts arrive, with its tax. Billing
invoices on the ERP's ``goods_issue.posted`` (the ERP invoices a shipment only once its
goods issue is posted); a ``shipment.dispatched`` from before billing started is
invoiced on too (decision 0045)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from datetime import timedelta
from typing import Any

import msgspec

from shared.events.catalog import STREAM_BILLING, STREAM_ERP, STREAM_WMS, ShipmentDispatched
from shared.events.envelope import Event
from shared.events.sqlite_log import SqliteEventLog
from tests.billing.helpers import (
    book_sales_order,
    goods_issue,
    pay,
    post_goods_issue,
    seed_booked_order,
    ship_posted,
)
from tests.orders.helpers import (
    body,
    fulfillment_orders,
    new_customer,
    place,
    redelivered,
    seed_released_order,
    ship,
    shipment_event,
    stocked_item,
    uid,
)
from tests.support.polling import wait_until
from tests.support.stack import Stack


def usd(amount: int) -> dict[str, Any]:
    return {"amount_minor": amount, "currency": "USD"}


def billing_invoices(stack: Stack, order_id: str, **client: Any) -> list[dict[str, Any]]:
    with stack.client("billing", "billing:read", **client) as billing:
        response = billing.get("/billing/v1/invoices", params={"order_id": order_id})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def erp_invoices(stack: Stack, order_id: str) -> list[dict[str, Any]]:
    with stack.client("erp", "erp:read") as erp:
        response = erp.get("/erp/v1/invoices", params={"order_id": order_id})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def events_on(stack: Stack, stream: str, type_: str, mentioning: str) -> list[Event]:
    """The events of ``type_`` on ``stream`` whose payload mentions ``mentioning``."""

    async def read() -> list[Event]:
        log = SqliteEventLog(stack.bus_path())
        try:
            entries = await log.read_all(stream, None, 10_000)
        finally:
            await log.close()
        return [e for _, _, e in entries if e.type == type_]

    return [e for e in asyncio.run(read()) if mentioning.encode() in bytes(e.data)]


def issued_events(stack: Stack, shipment_id: str) -> list[Event]:
    return events_on(stack, STREAM_BILLING, "invoice.issued", shipment_id)


def replay_group(stack: Stack, group: str, stream: str) -> None:
    """Rewinds a consumer group to the start of a stream: every entry is delivered
    again with its original event id (an operator's replay)."""
    with sqlite3.connect(stack.bus_path()) as conn:
        conn.execute(
            "UPDATE consumer_groups SET last_delivered_id = 0 WHERE grp = ? AND stream = ?",
            (group, stream),
        )


def stream_head(stack: Stack, stream: str) -> int:
    with sqlite3.connect(stack.bus_path()) as conn:
        (head,) = conn.execute(
            "SELECT COALESCE(MAX(id), 0) FROM entries WHERE stream = ?", (stream,)
        ).fetchone()
    return int(head)


def group_caught_up(stack: Stack, group: str, stream: str, head: int) -> bool:
    with sqlite3.connect(stack.bus_path()) as conn:
        (last,) = conn.execute(
            "SELECT last_delivered_id FROM consumer_groups WHERE grp = ? AND stream = ?",
            (group, stream),
        ).fetchone()
        (pending,) = conn.execute(
            "SELECT COUNT(*) FROM pending WHERE grp = ? AND stream = ?", (group, stream)
        ).fetchone()
    return int(last) >= head and pending == 0


def test_a_shipment_is_invoiced_once_however_often_it_is_delivered(stack: Stack) -> None:
    customer_id = new_customer(stack)
    order_id = seed_booked_order(stack, customer_id, [("SKU-A", 5, 1250), ("SKU-B", 2, 300)])
    event = ship_posted(stack, order_id, [("SKU-A", 3), ("SKU-B", 2)])
    (invoice,) = wait_until(lambda: billing_invoices(stack, order_id), what="the invoice")
    shipment_id = event.payload(ShipmentDispatched).shipment_id
    assert invoice["shipment_id"] == shipment_id
    assert invoice["customer_id"] == customer_id
    assert invoice["status"] == "issued"
    # The default rate table: 20 % on standard goods (items unknown to the ERP are).
    assert invoice["subtotal"] == usd(3 * 1250 + 2 * 300)
    assert invoice["tax"] == usd(750 + 120)
    assert invoice["total"] == usd(3 * 1250 + 2 * 300 + 750 + 120)
    assert invoice["outstanding"] == invoice["total"]
    assert invoice["paid"] == invoice["credited"] == usd(0)
    assert invoice["due_date"] and invoice["overdue"] is False
    assert [
        (line["sku"], line["quantity"], line["unit_price"], line["amount"], line["tax"])
        for line in invoice["lines"]
    ] == [
        ("SKU-A", 3, usd(1250), usd(3750), usd(750)),
        ("SKU-B", 2, usd(300), usd(600), usd(120)),
    ]
    assert {line["tax_code"] for line in invoice["lines"]} == {"any-standard-2000"}
    (in_erp,) = erp_invoices(stack, order_id)
    assert in_erp["invoice_id"] == invoice["invoice_id"]
    assert (in_erp["total"], in_erp["tax"], in_erp["due_date"]) == (
        invoice["total"],
        invoice["tax"],
        invoice["due_date"],
    )
    (issued,) = issued_events(stack, shipment_id)
    payload = msgspec.json.decode(bytes(issued.data))
    assert payload["tax"] == invoice["tax"] and payload["due_date"] == invoice["due_date"]
    with stack.client("billing", "billing:read") as billing:
        one = billing.get(f"/billing/v1/invoices/{invoice['invoice_id']}")
    assert one.status_code == 200
    assert one.json() == invoice

    # Delivered again: a replay of both streams with the original ids, and each fact
    # under a new event id (the goods issue's, and a shipment.dispatched from before
    # billing started, which it invoices on too). The rewinds go first: the publishes
    # after them move the heads, which is what wakes an idle consumer of the embedded log.
    (posted,) = events_on(stack, STREAM_ERP, "goods_issue.posted", shipment_id)
    assert posted.subject == f"goods_issue:{shipment_id}"
    assert msgspec.json.decode(bytes(posted.data))["order_id"] == order_id
    for stream in (STREAM_ERP, STREAM_WMS):
        replay_group(stack, "billing", stream)
    stack.publish(STREAM_ERP, [redelivered(posted)])
    stack.publish(STREAM_WMS, [from_before_billing_started(redelivered(event))])
    for stream in (STREAM_ERP, STREAM_WMS):
        head = stream_head(stack, stream)
        wait_until(
            lambda s=stream, h=head: group_caught_up(stack, "billing", s, h),
            what=f"billing to replay {stream}",
        )
    assert [i["invoice_id"] for i in billing_invoices(stack, order_id)] == [invoice["invoice_id"]]
    assert len(erp_invoices(stack, order_id)) == 1
    assert len(issued_events(stack, shipment_id)) == 1


def erp_posts(stack: Stack, route: str) -> float:
    """How many POSTs of ``route`` the ERP answered (its /metrics)."""
    return answered(stack, "erp", "POST", route)


def answered(stack: Stack, service: str, method: str, route: str) -> float:
    """How many ``method`` ``route`` requests ``service`` answered (its /metrics)."""
    with stack.client(service) as client:
        text = client.get("/metrics").text
    return sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("tally_http_request_seconds_count{")
        and f'service="{service}"' in line
        and f'method="{method}"' in line
        and f'route="{route}"' in line
    )


def test_the_orders_of_one_batch_of_shipments_are_read_in_one_call(stack: Stack) -> None:
    """Billing reads what an invoice takes from its order (prices, customer, region)
    for a batch of shipments in one batch read of the orders API, not one read each;
    each shipment is invoiced at its own order's price."""
    customer_id = new_customer(stack)
    prices = [1000 + 100 * n for n in range(5)]
    orders = [seed_booked_order(stack, customer_id, [("SKU-A", 2, price)]) for price in prices]
    issues = [goods_issue(uid("SHP"), [("SKU-A", 1)], order_id) for order_id in orders]
    one, many = "/orders/v1/orders/{order_id}", "/orders/v1/orders"
    before = (
        answered(stack, "order_to_ship", "GET", one),
        answered(stack, "order_to_ship", "GET", many),
    )
    post_together(stack, issues)
    invoices = [
        wait_until(lambda o=order_id: billing_invoices(stack, o), what="its invoice")
        for order_id in orders
    ]
    reads = (
        answered(stack, "order_to_ship", "GET", one) - before[0],
        answered(stack, "order_to_ship", "GET", many) - before[1],
    )
    assert reads[1] >= 1 and sum(reads) < len(issues), reads
    assert [i[0]["lines"][0]["unit_price"]["amount_minor"] for i in invoices] == prices


def test_the_shipments_of_one_batch_are_invoiced_in_one_call(stack: Stack) -> None:
    """Shipments arriving together cost the ERP one invoice call, not one each; each
    shipment still has its one invoice, in billing and in the ERP."""
    customer_id = new_customer(stack)
    order_id = seed_booked_order(stack, customer_id, [("SKU-A", 10, 1000)])
    issues = [goods_issue(uid("SHP"), [("SKU-A", 1)], order_id) for _ in range(5)]
    single, batch = "/erp/v1/invoices", "/erp/v1/invoices/batch"
    before = (erp_posts(stack, single), erp_posts(stack, batch))
    post_together(stack, issues)

    def all_five() -> list[dict[str, Any]] | None:
        found = billing_invoices(stack, order_id)
        return found if len(found) == 5 else None

    invoices = wait_until(all_five, what="five invoices")
    calls = (erp_posts(stack, single) - before[0], erp_posts(stack, batch) - before[1])
    assert calls[1] >= 1 and sum(calls) < len(issues), calls
    assert sorted(i["shipment_id"] for i in invoices) == sorted(i["reference"] for i in issues)
    assert len(erp_invoices(stack, order_id)) == 5


def test_a_shipment_is_invoiced_once_its_goods_issue_is_posted(stack: Stack) -> None:
    """The ERP invoices only goods it has seen leave: billing does not ask it on the
    WMS's ``shipment.dispatched`` (no invoice call, no park), and invoices once the
    ERP announces the goods issue. (Availability, which posts goods issues, is down
    meanwhile.)"""
    customer_id = new_customer(stack)
    order_id = seed_booked_order(stack, customer_id, [("SKU-A", 2, 500)])
    calls = ("/erp/v1/invoices", "/erp/v1/invoices/batch")
    with stack.down("availability"):
        before = sum(erp_posts(stack, route) for route in calls)
        event = ship_posted(stack, order_id, [("SKU-A", 2)], post=False)
        head = stream_head(stack, STREAM_WMS)
        wait_until(
            lambda: group_caught_up(stack, "billing", STREAM_WMS, head),
            what="billing to take the shipment",
        )
        assert billing_invoices(stack, order_id) == []
        assert erp_invoices(stack, order_id) == []
        assert sum(erp_posts(stack, route) for route in calls) == before
        shipment_id = event.payload(ShipmentDispatched).shipment_id
        post_goods_issue(stack, shipment_id, [("SKU-A", 2)], order_id)
        (invoice,) = wait_until(lambda: billing_invoices(stack, order_id), what="the invoice")
    assert invoice["total"] == usd(1000 + 200)
    assert invoice["shipment_id"] == shipment_id


def test_a_shipment_dispatched_before_billing_started_is_invoiced_on_it(stack: Stack) -> None:
    """A ``shipment.dispatched`` still on the bus from before billing started (its
    goods issue posted before the ERP named orders in goods issues): billing invoices
    on it as it did, waiting for the posting."""
    customer_id = new_customer(stack)
    order_id = seed_booked_order(stack, customer_id, [("SKU-A", 3, 400)])
    event = from_before_billing_started(shipment_event(order_id, [("SKU-A", 3)]))
    shipment_id = event.payload(ShipmentDispatched).shipment_id
    with stack.down("availability"):  # the goods issue is posted as an older one was
        stack.publish(STREAM_WMS, [event])
        time.sleep(1.0)
        assert billing_invoices(stack, order_id) == []  # waits for the goods issue
        post_goods_issue(stack, shipment_id, [("SKU-A", 3)])  # naming no order
        (invoice,) = wait_until(lambda: billing_invoices(stack, order_id), what="the invoice")
    assert invoice["shipment_id"] == shipment_id
    assert invoice["total"] == usd(1200 + 240)


def test_a_shipment_of_an_order_the_erp_has_not_booked_waits_for_it(stack: Stack) -> None:
    customer_id = new_customer(stack)
    lines = [("SKU-A", 1, 700)]
    order_id = seed_released_order(stack, customer_id, lines)
    ship_posted(stack, order_id, [("SKU-A", 1)])
    time.sleep(1.5)
    assert billing_invoices(stack, order_id) == []
    book_sales_order(stack, order_id, customer_id, lines)
    (invoice,) = wait_until(lambda: billing_invoices(stack, order_id), what="the invoice")
    assert invoice["total"] == usd(700 + 140)


def test_an_invoice_the_erp_already_holds_is_adopted(stack: Stack) -> None:
    customer_id = new_customer(stack)
    order_id = seed_booked_order(stack, customer_id, [("SKU-A", 1, 999)])
    shipment_id = uid("SHP")
    with stack.down("billing"):
        post_goods_issue(stack, shipment_id, [("SKU-A", 1)], order_id)
        created = manual_invoice(stack, order_id, shipment_id, customer_id)
    (invoice,) = wait_until(lambda: billing_invoices(stack, order_id), what="the invoice")
    assert invoice["invoice_id"] == created["invoice_id"]
    assert len(erp_invoices(stack, order_id)) == 1


def test_an_invoice_a_payment_records_first_is_announced_once(stack: Stack) -> None:
    """The ERP holds a shipment's invoice that billing has not recorded (issued, and
    billing's transaction not committed yet); a remittance the ERP applies to it makes
    billing record it first, from the ERP's figures. That path announces it
    (``invoice.issued``, which the orders service counts as invoiced); billing's own
    invoicing of the shipment then adopts it and announces nothing again. (A chaos
    day on PostgreSQL found invoices announced by neither.)"""
    customer_id = new_customer(stack)
    order_id = seed_booked_order(stack, customer_id, [("SKU-A", 2, 500)])
    shipped = from_before_billing_started(shipment_event(order_id, [("SKU-A", 2)]))
    shipment_id = shipped.payload(ShipmentDispatched).shipment_id
    post_goods_issue(stack, shipment_id, [("SKU-A", 2)])  # naming no order: no invoicing
    created = manual_invoice(stack, order_id, shipment_id, customer_id, quantity=2, price=500)
    paid = pay(stack, customer_id, 600)
    assert paid.status_code == 201, paid.text
    (invoice,) = billing_invoices(stack, order_id)
    assert invoice["invoice_id"] == created["invoice_id"] and invoice["status"] == "partially_paid"
    (issued,) = wait_until(lambda: issued_events(stack, shipment_id), what="invoice.issued")
    assert msgspec.json.decode(bytes(issued.data))["order_id"] == order_id
    # Billing's invoicing of the shipment (an event from before it started) adopts it.
    stack.publish(STREAM_WMS, [shipped])
    head = stream_head(stack, STREAM_WMS)
    wait_until(
        lambda: group_caught_up(stack, "billing", STREAM_WMS, head),
        what="billing to take the shipment",
    )
    assert len(issued_events(stack, shipment_id)) == 1
    assert [i["invoice_id"] for i in billing_invoices(stack, order_id)] == [invoice["invoice_id"]]
    assert len(erp_invoices(stack, order_id)) == 1


def manual_invoice(
    stack: Stack,
    order_id: str,
    shipment_id: str,
    customer_id: str,
    *,
    quantity: int = 1,
    price: int = 999,
) -> dict[str, Any]:
    """The shipment invoiced in the ERP by hand, under a key billing does not use."""
    with stack.client("erp", "erp:write") as erp:
        created = erp.post(
            "/erp/v1/invoices",
            json={
                "order_id": order_id,
                "shipment_id": shipment_id,
                "customer_id": customer_id,
                "lines": [
                    {
                        "sku": "SKU-A",
                        "quantity": quantity,
                        "unit_price": {"amount_minor": price, "currency": "USD"},
                    }
                ],
            },
            headers={"Idempotency-Key": uid("manual")},
        )
    assert created.status_code == 201, created.text
    found: dict[str, Any] = created.json()
    return found


def from_before_billing_started(event: Event) -> Event:
    """The event as if it had been published an hour ago."""
    return msgspec.structs.replace(event, time=event.time - timedelta(hours=1))


def post_together(stack: Stack, issues: list[dict[str, Any]]) -> None:
    """Goods issues posted in one ERP transaction: their events reach billing together."""
    with stack.client("erp", "erp:write") as erp:
        response = erp.post(
            "/erp/v1/inventory/postings/batch",
            json={"postings": [{"idempotency_key": uid("gi"), "posting": i} for i in issues]},
        )
    assert response.status_code == 200, response.text
    assert all(r["refusal"] is None for r in response.json()["results"]), response.text


def test_bound_client_sees_only_its_customers_invoices(stack: Stack) -> None:
    customer_id = new_customer(stack)
    order_id = seed_booked_order(stack, customer_id, [("SKU-A", 1, 100)])
    ship_posted(stack, order_id, [("SKU-A", 1)])
    (invoice,) = wait_until(lambda: billing_invoices(stack, order_id), what="the invoice")
    assert billing_invoices(stack, order_id, customer_id=customer_id) == [invoice]
    assert billing_invoices(stack, order_id, customer_id="SOMEONE-ELSE") == []
    with stack.client("billing", "billing:read", customer_id="SOMEONE-ELSE") as other:
        missing = other.get(f"/billing/v1/invoices/{invoice['invoice_id']}")
        assert missing.status_code == 404
        assert missing.json()["type"] == "/problems/invoice-not-found"
        # Asking for the owner by name changes nothing for a bound client.
        for params in ({"customer_id": customer_id}, {"order_id": order_id}, {}):
            listed = other.get("/billing/v1/invoices", params=params)
            assert listed.status_code == 200, listed.text
            assert invoice["invoice_id"] not in {i["invoice_id"] for i in listed.json()["items"]}
    with stack.client("billing", "billing:read", customer_id=customer_id) as own:
        assert own.get(f"/billing/v1/invoices/{invoice['invoice_id']}").status_code == 200
        listed = own.get("/billing/v1/invoices", params={"customer_id": customer_id}).json()
        assert [i["invoice_id"] for i in listed["items"]] == [invoice["invoice_id"]]
    with stack.client("billing", "billing:read") as staff:
        by_customer = staff.get("/billing/v1/invoices", params={"customer_id": customer_id})
        assert [i["invoice_id"] for i in by_customer.json()["items"]] == [invoice["invoice_id"]]
        elsewhere = staff.get("/billing/v1/invoices", params={"customer_id": "SOMEONE-ELSE"})
        assert elsewhere.json()["items"] == []
    with stack.client("billing", "orders:read") as wrong_scope:
        assert wrong_scope.get("/billing/v1/invoices").status_code == 403


def test_unknown_invoice_is_404(stack: Stack) -> None:
    with stack.client("billing", "billing:read") as billing:
        response = billing.get("/billing/v1/invoices/INV-nope")
    assert response.status_code == 404
    assert response.json()["type"] == "/problems/invoice-not-found"


def test_a_wms_shipment_of_a_placed_order_is_invoiced(full_stack: Stack, warehouse: str) -> None:
    customer_id = new_customer(full_stack)
    sku = stocked_item(full_stack, warehouse, 10, price=700)
    placed = place(full_stack, body(customer_id, (sku, 4)))
    assert placed.status_code == 201, placed.text
    order_id = placed.json()["order_id"]
    # Released to the WMS after the order is accepted, not before the answer.
    (fo,) = wait_until(
        lambda: fulfillment_orders(full_stack, order_id), what="the fulfillment order"
    )
    shipment = ship(full_stack, fo, [(sku, 3)])
    (invoice,) = wait_until(lambda: billing_invoices(full_stack, order_id), what="the invoice")
    assert invoice["shipment_id"] == shipment["shipment_id"]
    assert invoice["subtotal"] == usd(2100)
    assert invoice["total"] == usd(2100 + 420)
    assert len(erp_invoices(full_stack, order_id)) == 1
