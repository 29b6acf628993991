"""A return credited end to end over the real services: an order shipped, invoiced
with tax and partly paid; an RMA on the order; the WMS receives against it and
dispositions the units (mixed: restock, damaged, scrap, one held in quality control);
billing credits what the policy credits, once however often the facts arrive; the
held unit is credited when released; the ERP's balance and the statement agree."""

from __future__ import annotations

import time
from typing import Any

from shared.events.catalog import STREAM_WMS
from tests.billing.helpers import (
    billing_get,
    credit_notes_of,
    erp_get,
    events_about,
    invoice_of,
    money,
    pay,
)
from tests.orders.helpers import (
    body,
    events_of,
    fulfillments,
    new_customer,
    place,
    redelivered,
    settled,
    ship,
    stocked_item,
    uid,
    wms_post,
)
from tests.support.polling import wait_until
from tests.support.stack import Stack


def authorized_rma(stack: Stack, order_id: str, sku: str, quantity: int) -> str:
    with stack.client("order_to_ship", "orders:write orders:read") as orders:
        response = orders.post(
            f"/orders/v1/orders/{order_id}/returns",
            json={"lines": [{"sku": sku, "quantity": quantity}], "reason": "wrong size"},
            headers={"Idempotency-Key": uid("rma")},
        )
        assert response.status_code == 201, response.text
        rma_id = str(response.json()["rma_id"])

        def registered() -> bool:
            found = orders.get(f"/orders/v1/returns/{rma_id}")
            return bool(found.status_code == 200 and found.json()["wms_synced"])

        wait_until(registered, timeout=60, what=f"RMA {rma_id} registered at the WMS")
    return rma_id


def test_a_return_with_mixed_dispositions_is_credited_once_and_the_books_agree(
    full_stack: Stack, warehouse: str
) -> None:
    stack = full_stack
    customer_id = new_customer(stack)
    sku = stocked_item(stack, warehouse, 10, price=1000)
    placed = place(stack, body(customer_id, (sku, 5)))
    assert placed.status_code == 201, placed.text
    order_id = placed.json()["order_id"]
    settled(stack, order_id)
    (fo,) = fulfillments(stack, order_id)
    ship(stack, fo, [(sku, 5)])
    invoice = invoice_of(stack, order_id)
    invoice_id = invoice["invoice_id"]
    assert (invoice["subtotal"], invoice["tax"], invoice["total"]) == (
        money(5000),
        money(1000),
        money(6000),
    )
    assert pay(stack, customer_id, 2000, [(invoice_id, 2000)]).status_code == 201

    rma_id = authorized_rma(stack, order_id, sku, 4)
    received = wms_post(
        stack,
        "/wms/v1/returns",
        {"warehouse_id": warehouse, "rma_id": rma_id, "lines": [{"sku": sku, "quantity": 4}]},
    )
    return_id = received["return_id"]
    wms_post(
        stack,
        f"/wms/v1/returns/{return_id}/disposition",
        {
            "lines": [
                {"sku": sku, "quantity": 1, "disposition": "restock"},
                {"sku": sku, "quantity": 1, "disposition": "damaged"},
                {"sku": sku, "quantity": 1, "disposition": "scrap"},
                {"sku": sku, "quantity": 1, "disposition": "quality_control"},
            ]
        },
        status=200,
    )
    # Restocked and carrier-damaged units are credited (2 of 5 units: 2000 + 400 tax);
    # the scrapped one is not; the held one waits for its release.
    (first,) = wait_until(lambda: credit_notes_of(stack, invoice_id), what="the credit note")
    assert (first["reason"], first["return_id"], first["rma_id"]) == ("return", return_id, rma_id)
    assert first["lines"] == [{"sku": sku, "quantity": 2, "amount": money(2000), "tax": money(400)}]

    # The warehouse's facts delivered again under new event ids: nothing more.
    facts = [
        e
        for e in events_of(stack, STREAM_WMS, f"warehouse:{warehouse}")
        if e.type == "return.dispositioned"
    ]
    assert facts, "the WMS published the disposition"
    stack.publish(STREAM_WMS, [redelivered(e) for e in facts] * 2)
    time.sleep(1.5)
    assert len(credit_notes_of(stack, invoice_id)) == 1
    assert len(erp_get(stack, "/erp/v1/credit-notes", {"invoice_id": invoice_id})["items"]) == 1

    wms_post(
        stack,
        f"/wms/v1/returns/{return_id}/release",
        {"lines": [{"sku": sku, "quantity": 1, "disposition": "restock"}]},
        status=200,
    )
    wait_until(lambda: len(credit_notes_of(stack, invoice_id)) == 2, what="the release's note")
    notes = credit_notes_of(stack, invoice_id)
    (second,) = [n for n in notes if n["credit_note_id"] != first["credit_note_id"]]
    assert second["lines"] == [
        {"sku": sku, "quantity": 1, "amount": money(1000), "tax": money(200)}
    ]
    assert len(events_about(stack, "credit_note.issued", invoice_id, relayed=2)) == 2

    # 6000 invoiced - 3600 credited - 2000 paid = 400 owed, everywhere.
    now: dict[str, Any] = billing_get(stack, f"/billing/v1/invoices/{invoice_id}")
    assert (now["status"], now["credited"], now["paid"], now["outstanding"]) == (
        "partially_paid",
        money(3600),
        money(2000),
        money(400),
    )
    assert now["lines"][0]["credited_quantity"] == 3
    balance = erp_get(stack, f"/erp/v1/customers/{customer_id}/balance")
    assert (balance["balance"], balance["credited"], balance["paid"]) == (
        money(400),
        money(3600),
        money(2000),
    )
    statement = billing_get(stack, f"/billing/v1/customers/{customer_id}/statement")
    assert statement["balance"] == money(400)
    assert [(e["kind"], e["amount"], e["balance"]) for e in statement["entries"]] == [
        ("invoice", money(6000), money(6000)),
        ("payment", money(2000), money(4000)),
        ("credit_note", money(2400), money(1600)),
        ("credit_note", money(1200), money(400)),
    ]
    assert [i["outstanding"] for i in statement["open_invoices"]] == [money(400)]
