"""Credit notes over the real services: a price correction credits once however often
it is posted; a dispositioned return is credited by the policy, pro rata, exactly
once however often (and under whatever event ids) its event arrives; units not yet
invoiced wait for their invoice."""

from __future__ import annotations

import time
from typing import Any

import msgspec

from shared.events.catalog import STREAM_WMS
from tests.billing.helpers import (
    adjust,
    billing_get,
    credit_notes_of,
    dispositioned,
    erp_get,
    events_about,
    invoice_of,
    money,
    seed_booked_order,
    ship_posted,
)
from tests.orders.helpers import new_customer, redelivered
from tests.support.polling import wait_until
from tests.support.stack import Stack


def payload(event: Any) -> dict[str, Any]:
    decoded: dict[str, Any] = msgspec.json.decode(bytes(event.data))
    return decoded


def shipped_and_invoiced(
    stack: Stack, lines: list[tuple[str, int, int]]
) -> tuple[str, str, dict[str, Any]]:
    customer_id = new_customer(stack)
    order_id = seed_booked_order(stack, customer_id, lines)
    ship_posted(stack, order_id, [(sku, quantity) for sku, quantity, _ in lines])
    return customer_id, order_id, invoice_of(stack, order_id)


def erp_notes(stack: Stack, invoice_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = erp_get(
        stack, "/erp/v1/credit-notes", {"invoice_id": invoice_id}
    )["items"]
    return items


def test_a_price_correction_credits_once_however_often_it_is_posted(stack: Stack) -> None:
    customer_id, _, invoice = shipped_and_invoiced(stack, [("SKU-A", 4, 1000)])
    invoice_id = invoice["invoice_id"]
    assert invoice["total"] == money(4800)
    first = adjust(stack, invoice_id, [("SKU-A", 900)], key="fix-1")
    assert first.status_code == 201, first.text
    note = first.json()
    assert (note["reason"], note["invoice_id"], note["customer_id"]) == (
        "price_correction",
        invoice_id,
        customer_id,
    )
    assert note["lines"] == [
        {"sku": "SKU-A", "quantity": 0, "amount": money(400), "tax": money(80)}
    ]
    assert (note["subtotal"], note["tax"], note["total"]) == (money(400), money(80), money(480))
    for _ in range(2):
        again = adjust(stack, invoice_id, [("SKU-A", 900)], key="fix-1")
        assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
        assert again.json() == note
    # The same correction under other keys: the same credit note, nothing credited again.
    for _ in range(2):
        repeated = adjust(stack, invoice_id, [("SKU-A", 900)])
        assert repeated.status_code == 201, repeated.text
        assert repeated.json()["credit_note_id"] == note["credit_note_id"]
    assert [n["credit_note_id"] for n in credit_notes_of(stack, invoice_id)] == [
        note["credit_note_id"]
    ]
    assert [n["credit_note_id"] for n in erp_notes(stack, invoice_id)] == [note["credit_note_id"]]
    issued = events_about(stack, "credit_note.issued", invoice_id, relayed=1)
    assert len(issued) == 1
    assert payload(issued[0])["reason"] == "price_correction"
    assert payload(issued[0])["total"] == money(480)
    now = billing_get(stack, f"/billing/v1/invoices/{invoice_id}")
    assert (now["status"], now["credited"], now["outstanding"]) == (
        "issued",
        money(480),
        money(4320),
    )
    assert billing_get(stack, f"/billing/v1/credit-notes/{note['credit_note_id']}") == note

    # A further, lower price credits the difference again.
    lower = adjust(stack, invoice_id, [("SKU-A", 850)])
    assert lower.status_code == 201, lower.text
    assert lower.json()["lines"][0]["amount"] == money(200)
    assert lower.json()["lines"][0]["tax"] == money(40)


def test_refused_price_corrections_write_nothing(stack: Stack) -> None:
    customer_id, _, invoice = shipped_and_invoiced(stack, [("SKU-A", 2, 1000)])
    invoice_id = invoice["invoice_id"]
    refusals = [
        (adjust(stack, invoice_id, [("SKU-A", 1000)]), 422, "price-not-lower"),
        (adjust(stack, invoice_id, [("SKU-A", 1200)]), 422, "price-not-lower"),
        (adjust(stack, invoice_id, [("SKU-Z", 100)]), 422, "not-on-invoice"),
        (adjust(stack, invoice_id, [("SKU-A", 100)], currency="EUR"), 422, "currency-mismatch"),
        (adjust(stack, invoice_id, [("SKU-A", 1), ("SKU-A", 2)]), 422, "duplicate-line"),
        (adjust(stack, "INV-NOPE", [("SKU-A", 100)]), 404, "invoice-not-found"),
        (adjust(stack, invoice_id, [("SKU-A", 100)], scopes="billing:write"), 403, None),
        (
            adjust(stack, invoice_id, [("SKU-A", 100)], scopes="billing:write", bound=customer_id),
            403,
            None,
        ),
    ]
    for response, status, slug in refusals:
        assert response.status_code == status, response.text
        if slug:
            assert response.json()["type"] == f"/problems/{slug}", response.text
    assert credit_notes_of(stack, invoice_id) == []
    assert erp_notes(stack, invoice_id) == []
    assert events_about(stack, "credit_note.issued", invoice_id) == []


def test_a_return_is_credited_once_however_often_its_disposition_arrives(stack: Stack) -> None:
    customer_id, order_id, invoice = shipped_and_invoiced(
        stack, [("SKU-A", 3, 1000), ("SKU-B", 2, 500)]
    )
    invoice_id = invoice["invoice_id"]
    assert invoice["total"] == money(3000 + 1000 + 600 + 200)
    event = dispositioned(
        order_id,
        [
            ("SKU-A", 1, "restock"),
            ("SKU-A", 1, "scrap"),  # customer misuse: not credited
            ("SKU-B", 1, "damaged"),
            ("SKU-B", 1, "return_to_vendor"),
        ],
        rma_id="RMA-test-1",
    )
    # Three deliveries: the event, the same event again, and the same fact re-published
    # under a new event id.
    stack.publish(STREAM_WMS, [event, event, redelivered(event)])
    (note,) = wait_until(lambda: credit_notes_of(stack, invoice_id), what="the credit note")
    assert (note["reason"], note["return_id"], note["rma_id"]) == (
        "return",
        msgspec.json.decode(bytes(event.data))["return_id"],
        "RMA-test-1",
    )
    assert note["lines"] == [
        {"sku": "SKU-A", "quantity": 1, "amount": money(1000), "tax": money(200)},
        {"sku": "SKU-B", "quantity": 2, "amount": money(1000), "tax": money(200)},
    ]
    assert note["total"] == money(2400)
    time.sleep(1.0)  # every delivery had its turn
    assert len(credit_notes_of(stack, invoice_id)) == 1
    assert len(erp_notes(stack, invoice_id)) == 1
    issued = events_about(stack, "credit_note.issued", invoice_id, relayed=1)
    assert len(issued) == 1 and payload(issued[0])["rma_id"] == "RMA-test-1"
    now = billing_get(stack, f"/billing/v1/invoices/{invoice_id}")
    assert (now["credited"], now["outstanding"], now["status"]) == (
        money(2400),
        money(2400),
        "issued",
    )

    # The rest of SKU-A comes back later (a release from quality control): the last
    # units take what is left, and the invoice is credited in full.
    released = dispositioned(order_id, [("SKU-A", 2, "restock")], released=True)
    stack.publish(STREAM_WMS, [released, redelivered(released)])
    wait_until(lambda: len(credit_notes_of(stack, invoice_id)) == 2, what="the second note")
    now = billing_get(stack, f"/billing/v1/invoices/{invoice_id}")
    assert (now["credited"], now["outstanding"], now["status"]) == (
        money(4800),
        money(0),
        "credited",
    )
    assert [line["credited_quantity"] for line in now["lines"]] == [3, 2]
    moves = events_about(stack, "invoice.status_changed", invoice_id, relayed=1)
    assert [payload(e)["status"] for e in moves] == ["credited"]
    statement = billing_get(stack, f"/billing/v1/customers/{customer_id}/statement")
    assert statement["balance"] == money(0)
    assert [e["kind"] for e in statement["entries"]] == ["invoice", "credit_note", "credit_note"]


def test_returned_units_not_invoiced_yet_wait_for_their_invoice(stack: Stack) -> None:
    customer_id = new_customer(stack)
    lines = [("SKU-A", 2, 1000)]
    order_id = seed_booked_order(stack, customer_id, lines)
    stack.publish(STREAM_WMS, [dispositioned(order_id, [("SKU-A", 2, "restock")])])
    time.sleep(1.5)
    assert (
        billing_get(stack, "/billing/v1/credit-notes", params={"customer_id": customer_id})["items"]
        == []
    )
    ship_posted(stack, order_id, [("SKU-A", 2)])
    invoice = invoice_of(stack, order_id)
    (note,) = wait_until(
        lambda: credit_notes_of(stack, invoice["invoice_id"]), what="the credit note", timeout=30
    )
    assert note["total"] == invoice["total"]


def test_scrapped_units_are_not_credited(stack: Stack) -> None:
    _, order_id, invoice = shipped_and_invoiced(stack, [("SKU-A", 2, 1000)])
    stack.publish(STREAM_WMS, [dispositioned(order_id, [("SKU-A", 2, "scrap")])])
    time.sleep(1.5)
    assert credit_notes_of(stack, invoice["invoice_id"]) == []
    assert erp_notes(stack, invoice["invoice_id"]) == []


def test_a_bound_client_reads_its_own_credit_notes_only(stack: Stack) -> None:
    customer_id, _, invoice = shipped_and_invoiced(stack, [("SKU-A", 1, 1000)])
    note = adjust(stack, invoice["invoice_id"], [("SKU-A", 500)]).json()
    other_id = new_customer(stack)
    own = billing_get(
        stack, f"/billing/v1/credit-notes/{note['credit_note_id']}", customer_id=customer_id
    )
    assert own == note
    with stack.client("billing", "billing:read", customer_id=other_id) as other:
        missing = other.get(f"/billing/v1/credit-notes/{note['credit_note_id']}")
        assert missing.status_code == 404
        assert missing.json()["type"] == "/problems/credit-note-not-found"
        for params in ({"customer_id": customer_id}, {"invoice_id": invoice["invoice_id"]}, {}):
            listed = other.get("/billing/v1/credit-notes", params=params)
            assert listed.status_code == 200
            assert note["credit_note_id"] not in listed.text
