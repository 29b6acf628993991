"""Payments through billing over the real services: an order shipped and invoiced with
tax, paid in two parts (issued -> partially_paid -> paid, with the events the portal
hears), the statement that follows, and every refused payment a problem that leaves
nothing written anywhere."""

from __future__ import annotations

from typing import Any

import msgspec

from tests.billing.helpers import (
    billing_get,
    erp_get,
    events_about,
    invoice_of,
    money,
    pay,
    seed_booked_order,
    ship_posted,
)
from tests.orders.helpers import body, fulfillment_orders, new_customer, place, ship, stocked_item
from tests.support.polling import wait_until
from tests.support.stack import Stack


def payload(event: Any) -> dict[str, Any]:
    decoded: dict[str, Any] = msgspec.json.decode(bytes(event.data))
    return decoded


def invoiced(stack: Stack, lines: list[tuple[str, int, int]]) -> tuple[str, dict[str, Any]]:
    """A customer with one invoice of an order shipped in full (seeded order)."""
    customer_id = new_customer(stack)
    order_id = seed_booked_order(stack, customer_id, lines)
    ship_posted(stack, order_id, [(sku, quantity) for sku, quantity, _ in lines])
    return customer_id, invoice_of(stack, order_id)


def nothing_written(stack: Stack, customer_id: str, invoice: dict[str, Any]) -> None:
    assert billing_get(stack, "/billing/v1/payments", params={"customer_id": customer_id}) == {
        "items": [],
        "next_cursor": None,
    }
    assert erp_get(stack, "/erp/v1/payments", {"customer_id": customer_id})["items"] == []
    assert events_about(stack, "payment.received", customer_id) == []
    now = billing_get(stack, f"/billing/v1/invoices/{invoice['invoice_id']}")
    assert (now["status"], now["paid"], now["outstanding"]) == (
        "issued",
        money(0),
        invoice["total"],
    )


def test_an_order_is_shipped_invoiced_with_tax_and_paid_in_two_parts(
    full_stack: Stack, warehouse: str
) -> None:
    stack = full_stack
    customer_id = new_customer(stack)
    sku = stocked_item(stack, warehouse, 10, price=1999)
    placed = place(stack, body(customer_id, (sku, 3)))
    assert placed.status_code == 201, placed.text
    order_id = placed.json()["order_id"]
    (fo,) = wait_until(lambda: fulfillment_orders(stack, order_id), what="the fulfillment order")
    ship(stack, fo, [(sku, 3)])
    invoice = invoice_of(stack, order_id)
    invoice_id = invoice["invoice_id"]
    # 3 x 19.99 = 59.97 net; 20 % = 11.994 -> 11.99 (half up per line, minor units).
    assert invoice["subtotal"] == money(5997)
    assert invoice["tax"] == money(1199)
    assert invoice["total"] == money(7196)
    assert invoice["status"] == "issued"

    first = pay(stack, customer_id, 3000, [(invoice_id, 3000)], key="remit-1")
    assert first.status_code == 201, first.text
    paid_once = first.json()
    assert paid_once["applied"] == [{"invoice_id": invoice_id, "amount": money(3000)}]
    assert paid_once["unapplied"] == money(0)
    again = pay(stack, customer_id, 3000, [(invoice_id, 3000)], key="remit-1")
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == paid_once
    now = billing_get(stack, f"/billing/v1/invoices/{invoice_id}")
    assert (now["status"], now["paid"], now["outstanding"]) == (
        "partially_paid",
        money(3000),
        money(4196),
    )

    # The rest, naming no invoice: applied to the open invoices, oldest due first; the
    # 4 cents over stay the customer's credit.
    second = pay(stack, customer_id, 4200)
    assert second.status_code == 201, second.text
    assert second.json()["applied"] == [{"invoice_id": invoice_id, "amount": money(4196)}]
    assert second.json()["unapplied"] == money(4)
    now = billing_get(stack, f"/billing/v1/invoices/{invoice_id}")
    assert (now["status"], now["paid"], now["outstanding"], now["overdue"]) == (
        "paid",
        money(7196),
        money(0),
        False,
    )
    in_erp = erp_get(stack, f"/erp/v1/invoices/{invoice_id}")
    assert (in_erp["status"], in_erp["outstanding"]) == ("paid", money(0))

    # The events reach the log when billing's outbox relay runs, after the answers.
    received = wait_until(
        lambda: (found := events_about(stack, "payment.received", customer_id))[1:] and found,
        what="both payments' events",
    )
    assert sorted(payload(e)["amount"]["amount_minor"] for e in received) == [3000, 4200]
    moves = wait_until(
        lambda: (found := events_about(stack, "invoice.status_changed", invoice_id))[1:] and found,
        what="both status changes",
    )
    assert [(e.sequence, payload(e)["status"]) for e in moves] == [
        (2, "partially_paid"),
        (3, "paid"),
    ]
    assert {e.subject for e in moves} == {f"invoice:{invoice_id}"}
    assert payload(moves[-1])["outstanding"] == money(0)

    listed = billing_get(stack, "/billing/v1/payments", params={"customer_id": customer_id})
    assert {p["payment_id"] for p in listed["items"]} == {
        paid_once["payment_id"],
        second.json()["payment_id"],
    }
    one = billing_get(stack, f"/billing/v1/payments/{paid_once['payment_id']}")
    assert one == paid_once

    statement = billing_get(stack, f"/billing/v1/customers/{customer_id}/statement")
    assert statement["currency"] == "USD"
    assert [(e["kind"], e["amount"], e["balance"]) for e in statement["entries"]] == [
        ("invoice", money(7196), money(7196)),
        ("payment", money(3000), money(4196)),
        ("payment", money(4200), money(0)),
    ]
    assert statement["balance"] == money(0)
    assert statement["open_invoices"] == []
    assert statement["unapplied_credit"] == money(4)
    assert statement["overdue"] == money(0)
    balance = erp_get(stack, f"/erp/v1/customers/{customer_id}/balance")
    assert balance["balance"] == statement["balance"]


def test_the_statement_lists_open_invoices_with_their_due_dates(stack: Stack) -> None:
    customer_id, invoice = invoiced(stack, [("SKU-A", 2, 1000)])
    assert pay(stack, customer_id, 500, [(invoice["invoice_id"], 500)]).status_code == 201
    statement = billing_get(stack, f"/billing/v1/customers/{customer_id}/statement")
    assert statement["balance"] == money(2400 - 500)
    assert statement["open_invoices"] == [
        {
            "invoice_id": invoice["invoice_id"],
            "due_date": invoice["due_date"],
            "outstanding": money(1900),
            "overdue": False,
        }
    ]
    assert [e["balance"] for e in statement["entries"]] == [money(2400), money(1900)]


def test_refused_payments_are_problems_that_write_nothing(stack: Stack) -> None:
    customer_id, invoice = invoiced(stack, [("SKU-A", 1, 1000)])  # total 1200
    invoice_id = invoice["invoice_id"]
    other_id, theirs = invoiced(stack, [("SKU-A", 1, 500)])
    refusals: list[tuple[Any, int, str]] = [
        (pay(stack, customer_id, 1200, currency="EUR"), 422, "currency-mismatch"),
        (
            pay(stack, customer_id, 100, [(invoice_id, 100)], currency="EUR"),
            422,
            "currency-mismatch",
        ),
        (pay(stack, customer_id, 0), 422, "invalid-amount"),
        (pay(stack, customer_id, 100, [(invoice_id, 0)]), 422, "invalid-amount"),
        (pay(stack, customer_id, 5000, [(invoice_id, 1201)]), 422, "over-application"),
        (pay(stack, customer_id, 100, [(invoice_id, 200)]), 422, "over-application"),
        (pay(stack, customer_id, 100, [("INV-NOPE", 100)]), 422, "unknown-invoice"),
        (pay(stack, customer_id, 100, [(theirs["invoice_id"], 100)]), 422, "unknown-invoice"),
        (pay(stack, "CUST-NOBODY", 100), 422, "unknown-customer"),
        (
            pay(stack, customer_id, 100, bound=other_id),
            403,
            "customer-not-permitted",
        ),
        (
            pay(stack, other_id, 100, [(invoice_id, 100)], bound=other_id),
            422,
            "unknown-invoice",
        ),
    ]
    for response, status, slug in refusals:
        assert response.status_code == status, response.text
        problem = response.json()
        assert response.headers["content-type"].startswith("application/problem+json")
        assert problem["type"] == f"/problems/{slug}", problem
    with stack.client("billing", "billing:write") as billing:
        negative = billing.post(
            "/billing/v1/payments",
            json={"customer_id": customer_id, "amount": {"amount_minor": -1, "currency": "USD"}},
            headers={"Idempotency-Key": "negative"},
        )
        assert negative.status_code == 400, negative.text
        assert negative.json()["type"] == "/problems/invalid-request"
        no_key = billing.post(
            "/billing/v1/payments", json={"customer_id": customer_id, "amount": money(100)}
        )
        assert no_key.status_code == 400, no_key.text
        read_only = stack.client("billing", "billing:read")
        with read_only:
            assert (
                read_only.post(
                    "/billing/v1/payments",
                    json={"customer_id": customer_id, "amount": money(100)},
                    headers={"Idempotency-Key": "read-only"},
                ).status_code
                == 403
            )
    nothing_written(stack, customer_id, invoice)
    nothing_written(stack, other_id, theirs)

    # A refused key is free to use again; the same key with another payload is not.
    ok = pay(stack, customer_id, 100, [(invoice_id, 100)], key="reuse-me")
    assert ok.status_code == 201, ok.text
    reused = pay(stack, customer_id, 200, [(invoice_id, 200)], key="reuse-me")
    assert reused.status_code == 422 and reused.json()["type"] == "/problems/idempotency-key-reused"


def test_a_bound_client_pays_and_reads_for_its_own_customer_only(stack: Stack) -> None:
    customer_id, invoice = invoiced(stack, [("SKU-A", 1, 1000)])
    other_id = new_customer(stack)
    paid = pay(stack, customer_id, 1200, bound=customer_id)
    assert paid.status_code == 201, paid.text
    payment_id = paid.json()["payment_id"]
    assert billing_get(stack, f"/billing/v1/invoices/{invoice['invoice_id']}")["status"] == "paid"
    own = billing_get(stack, f"/billing/v1/payments/{payment_id}", customer_id=customer_id)
    assert own["payment_id"] == payment_id
    with stack.client("billing", "billing:read", customer_id=other_id) as other:
        for path in (
            f"/billing/v1/payments/{payment_id}",
            f"/billing/v1/customers/{customer_id}/statement",
        ):
            response = other.get(path)
            assert response.status_code == 404, response.text
        listed = other.get("/billing/v1/payments", params={"customer_id": customer_id})
        assert listed.status_code == 200 and listed.json()["items"] == []
        unknown = other.get("/billing/v1/customers/CUST-NOBODY/statement")
        theirs = other.get(f"/billing/v1/customers/{customer_id}/statement")
        assert unknown.json()["type"] == theirs.json()["type"] == "/problems/customer-not-found"
    mine = billing_get(
        stack, f"/billing/v1/customers/{customer_id}/statement", customer_id=customer_id
    )
    assert mine["balance"] == money(0)
    with stack.client("billing", "billing:read") as staff:
        assert staff.get("/billing/v1/customers/CUST-NOBODY/statement").status_code == 404
        assert staff.get("/billing/v1/payments/PAY-NOPE").status_code == 404
