"""The billing batch reads the portal builds on (issue 18), over the real services:
credit notes and payments of many invoices in one read, and the customer's balance;
a client bound to a customer sees its own only."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from shared.settings import load_settings
from tests.billing.helpers import (
    adjust,
    billing_get,
    erp_get,
    invoice_of,
    pay,
    seed_booked_order,
    ship_posted,
)
from tests.orders.helpers import new_customer, uid
from tests.support.service import service_client
from tests.support.stack import Stack
from tests.support.tokens import TestIssuer


def invoiced(stack: Stack, customer_id: str, sku: str) -> str:
    order_id = seed_booked_order(stack, customer_id, [(sku, 2, 1000)])
    ship_posted(stack, order_id, [(sku, 2)])
    invoice_id: str = invoice_of(stack, order_id)["invoice_id"]
    return invoice_id


def created(response: Any) -> str:
    assert response.status_code == 201, response.text
    found: dict[str, Any] = response.json()
    return str(found.get("payment_id") or found["credit_note_id"])


def listed(stack: Stack, path: str, params: Any, key: str, **client: Any) -> list[str]:
    return [item[key] for item in billing_get(stack, path, params=params, **client)["items"]]


def test_payments_and_credit_notes_of_many_invoices(stack: Stack) -> None:
    mine, theirs = new_customer(stack), new_customer(stack)
    first, second = invoiced(stack, mine, "SKU-A"), invoiced(stack, mine, "SKU-A")
    other = invoiced(stack, theirs, "SKU-A")
    pay_first = created(pay(stack, mine, 500, [(first, 500)]))
    pay_both = created(pay(stack, mine, 600, [(first, 300), (second, 300)]))
    pay_other = created(pay(stack, theirs, 100, [(other, 100)]))
    credit_first = created(adjust(stack, first, [("SKU-A", 900)]))
    credit_second = created(adjust(stack, second, [("SKU-A", 800)]))
    credit_other = created(adjust(stack, other, [("SKU-A", 900)]))

    payments = "/billing/v1/payments"
    notes = "/billing/v1/credit-notes"
    every = [("invoice_id", i) for i in (second, other, uid("INV-NONE"), first)]
    assert listed(stack, payments, every, "payment_id") == sorted([pay_first, pay_both, pay_other])
    assert listed(stack, payments, {"invoice_id": second}, "payment_id") == [pay_both]
    assert listed(stack, payments, {"invoice_id": first}, "payment_id") == sorted(
        [pay_first, pay_both]
    )
    assert listed(stack, notes, every, "credit_note_id") == sorted(
        [credit_first, credit_second, credit_other]
    )
    assert listed(stack, notes, {"invoice_id": first}, "credit_note_id") == [credit_first]
    # Paging keeps the filter.
    page = billing_get(stack, payments, params=[*every, ("limit", "1")])
    rest = billing_get(stack, payments, params=[*every, ("cursor", page["next_cursor"])])
    assert [p["payment_id"] for p in page["items"] + rest["items"]] == sorted(
        [pay_first, pay_both, pay_other]
    )

    # A bound client: its own customer's documents only, whatever invoices it names.
    assert listed(stack, payments, every, "payment_id", customer_id=theirs) == [pay_other]
    assert listed(stack, notes, every, "credit_note_id", customer_id=theirs) == [credit_other]
    assert listed(stack, payments, {"invoice_id": first}, "payment_id", customer_id=theirs) == []
    assert listed(stack, notes, {"invoice_id": first}, "credit_note_id", customer_id=theirs) == []
    # More than 100 invoices is a 400.
    with stack.client("billing", "billing:read") as billing:
        too_many: Any = [("invoice_id", f"INV-{n}") for n in range(101)]
        assert billing.get(payments, params=too_many).status_code == 400
        assert billing.get(notes, params=too_many).status_code == 400


def test_the_customer_balance_from_the_erp(stack: Stack) -> None:
    mine, theirs = new_customer(stack), new_customer(stack)
    invoice_id = invoiced(stack, mine, "SKU-A")
    created(pay(stack, mine, 500, [(invoice_id, 500)]))
    created(pay(stack, mine, 50))  # applied to the open invoice: nothing unapplied
    path = f"/billing/v1/customers/{mine}/balance"

    balance = billing_get(stack, path)
    in_erp = erp_get(stack, f"/erp/v1/customers/{mine}/balance")
    assert set(balance) >= {
        "customer_id",
        "balance",
        "overdue",
        "open_invoices",
        "unapplied_credit",
        "as_of",
    }
    assert {k: v for k, v in balance.items() if k != "as_of"} == {
        k: v for k, v in in_erp.items() if k != "as_of"
    }
    invoice = billing_get(stack, f"/billing/v1/invoices/{invoice_id}")
    assert balance["balance"] == invoice["outstanding"]
    assert balance["open_invoices"] == 1
    assert billing_get(stack, path, customer_id=mine)["balance"] == balance["balance"]

    with stack.client("billing", "billing:read", customer_id=theirs) as partner:
        refused = partner.get(path)
        unknown = partner.get(f"/billing/v1/customers/{uid('CUST-NONE')}/balance")
    assert refused.status_code == unknown.status_code == 404, refused.text
    assert refused.json()["type"] == unknown.json()["type"] == "/problems/customer-not-found"
    with stack.client("billing", "billing:read") as staff:
        assert staff.get(f"/billing/v1/customers/{uid('CUST-NONE')}/balance").status_code == 404


OLD_PAYMENTS = """
CREATE TABLE payments (
    payment_id VARCHAR(64) NOT NULL PRIMARY KEY,
    customer_id VARCHAR(64) NOT NULL,
    amount_minor BIGINT NOT NULL,
    currency VARCHAR(3) NOT NULL,
    reference VARCHAR(200),
    received_on VARCHAR(10) NOT NULL,
    applied JSON NOT NULL,
    unapplied_minor BIGINT NOT NULL,
    created_at DATETIME NOT NULL
);
INSERT INTO payments VALUES
    ('PAY-OLD-1', 'CUST-OLD', 700, 'USD', NULL, '2026-01-02',
     '[{"invoice_id": "INV-1", "amount_minor": 400}, {"invoice_id": "INV-2", "amount_minor": 300}]',
     0, '2026-01-02 03:04:05.000000'),
    ('PAY-OLD-2', 'CUST-OLD', 50, 'USD', NULL, '2026-01-03', '[]', 50,
     '2026-01-03 03:04:05.000000');
"""


def test_payments_booked_before_the_invoice_index_are_found_by_invoice(
    tmp_path: Path, issuer: TestIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("TALLY_DATABASE_URL", "TALLY_BILLING_DATABASE_URL", "TALLY_BUS_URL"):
        monkeypatch.delenv(name, raising=False)
    with sqlite3.connect(tmp_path / "billing.db") as conn:
        conn.executescript(OLD_PAYMENTS)
    settings = load_settings("billing", data_dir=tmp_path)
    for _ in range(2):  # a second start-up indexes nothing twice
        with service_client("billing", settings, issuer, "billing:read") as client:
            by_invoice = {
                invoice: [
                    p["payment_id"]
                    for p in client.get(
                        "/billing/v1/payments", params={"invoice_id": invoice}
                    ).json()["items"]
                ]
                for invoice in ("INV-1", "INV-2", "INV-3")
            }
        assert by_invoice == {"INV-1": ["PAY-OLD-1"], "INV-2": ["PAY-OLD-1"], "INV-3": []}


def test_what_a_customer_still_owes_is_listed_by_status(stack: Stack) -> None:
    customer = new_customer(stack)
    paid, partly, open_ = (invoiced(stack, customer, "SKU-A") for _ in range(3))
    owed = billing_get(stack, f"/billing/v1/invoices/{paid}")["outstanding"]["amount_minor"]
    created(pay(stack, customer, owed, [(paid, owed)]))
    created(pay(stack, customer, 500, [(partly, 500)]))
    path = "/billing/v1/invoices"

    def of_status(*statuses: str) -> list[str]:
        params = [("customer_id", customer), *(("status", s) for s in statuses)]
        return listed(stack, path, params, "invoice_id")

    assert of_status("issued", "partially_paid") == sorted([partly, open_])
    assert of_status("paid") == [paid]
    assert of_status() == sorted([paid, partly, open_])
    with stack.client("billing", "billing:read") as billing:
        refused = billing.get(path, params={"status": "overdue"})
    assert refused.status_code == 400
    assert refused.headers["content-type"].startswith("application/problem+json")
