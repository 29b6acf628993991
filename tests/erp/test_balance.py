"""A customer's balance (invoices - credit notes - payments applied) with its open and
overdue invoices and unapplied credit, and the credit exposure the order flow reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from litestar.testing import TestClient

from tests.erp.money import (
    balance,
    book,
    credit_body,
    customer,
    get,
    pay_body,
    shipped_invoice,
    usd,
)
from tests.support.problems import assert_problem
from tests.support.service import post


def signed(amount: int) -> dict[str, Any]:
    return {"amount_minor": amount, "currency": "USD"}


def figures(client: TestClient[Any], customer_id: str = "CUST-A") -> dict[str, Any]:
    found = balance(client, customer_id)
    assert found["customer_id"] == customer_id
    datetime.fromisoformat(found["as_of"])
    return {k: v for k, v in found.items() if k not in ("customer_id", "as_of")}


def exposure(client: TestClient[Any]) -> dict[str, int]:
    body = get(client, "/erp/v1/customers/CUST-A/credit")
    return {k: v["amount_minor"] for k, v in body.items() if k != "customer_id"}


def test_the_balance_follows_invoices_credit_notes_and_payments(client: TestClient[Any]) -> None:
    customer(client)
    customer(client, "CUST-B")
    assert figures(client) == {
        "balance": usd(0),
        "invoiced": usd(0),
        "credited": usd(0),
        "paid": usd(0),
        "open_invoices": 0,
        "unapplied_credit": usd(0),
        "overdue": usd(0),
        "net": signed(0),
    }
    book(client, "ORD-1", [("A", 10, 1000)])
    book(client, "ORD-B", [("A", 1, 7)], customer_id="CUST-B")
    one = shipped_invoice(client, "ORD-1", "SHP-1", [("A", 4, 1000, 400)])  # 4400
    shipped_invoice(client, "ORD-1", "SHP-2", [("A", 2, 1000, 200)])  # 2200
    shipped_invoice(client, "ORD-B", "SHP-B", [("A", 1, 7, 0)], customer_id="CUST-B")
    note = credit_body(one["invoice_id"], "DSP-1", [("A", 1, 1000, 100)])
    assert post(client, "/erp/v1/credit-notes", note, key="cn").status_code == 201
    paid = post(
        client,
        "/erp/v1/payments",
        pay_body(1000, applications=[(one["invoice_id"], 1000)]),
        key="p",
    )
    assert paid.status_code == 201
    assert figures(client) == {
        "balance": usd(6600 - 1100 - 1000),
        "invoiced": usd(6600),
        "credited": usd(1100),
        "paid": usd(1000),
        "open_invoices": 2,
        "unapplied_credit": usd(0),
        "overdue": usd(0),
        "net": signed(4500),
    }
    # Paying more than is open leaves credit: the net goes negative.
    post(client, "/erp/v1/payments", pay_body(5000), key="p2")
    assert figures(client) == {
        "balance": usd(0),
        "invoiced": usd(6600),
        "credited": usd(1100),
        "paid": usd(5500),
        "open_invoices": 0,
        "unapplied_credit": usd(500),
        "overdue": usd(0),
        "net": signed(-500),
    }
    assert figures(client, "CUST-B")["balance"] == usd(7)


def test_overdue_sums_the_outstanding_past_the_due_date(
    client: TestClient[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    customer(client, terms="net15")
    book(client, "ORD-1", [("A", 10, 100)])
    early = shipped_invoice(client, "ORD-1", "SHP-1", [("A", 3, 100, 0)])
    client.patch("/erp/v1/customers/CUST-A", json={"payment_terms": "net60"})
    shipped_invoice(client, "ORD-1", "SHP-2", [("A", 2, 100, 0)])
    post(
        client,
        "/erp/v1/payments",
        pay_body(100, applications=[(early["invoice_id"], 100)]),
        key="p",
    )
    from system_apis.erp.adapters import invoices, payments

    later = datetime.now(UTC).date() + timedelta(days=20)
    monkeypatch.setattr(invoices, "today", lambda: later)
    monkeypatch.setattr(payments, "today", lambda: later)
    found = figures(client)
    assert (found["balance"], found["overdue"], found["open_invoices"]) == (usd(400), usd(200), 2)
    overdue = [i["overdue"] for i in get(client, "/erp/v1/invoices")["items"]]
    assert overdue == [True, False]


def test_exposure_counts_the_outstanding_less_unapplied_credit(client: TestClient[Any]) -> None:
    customer(client)
    book(client, "ORD-1", [("A", 10, 1000)])  # 10,000 net
    one = shipped_invoice(client, "ORD-1", "SHP-1", [("A", 4, 1000, 800)])  # 4000 + 800 tax
    # The order's uninvoiced value is its net value less the invoices' net.
    assert exposure(client)["open_orders"] == 6000
    assert exposure(client)["unpaid_invoices"] == 4800
    post(client, "/erp/v1/payments", pay_body(1800), key="p1")
    assert exposure(client)["unpaid_invoices"] == 3000
    note = credit_body(one["invoice_id"], "DSP-1", [("A", 1, 1000, 200)])
    post(client, "/erp/v1/credit-notes", note, key="cn")
    assert exposure(client)["unpaid_invoices"] == 1800
    # Paid over what is open: the credit does not go below 0 (open orders stay).
    post(client, "/erp/v1/payments", pay_body(2500), key="p2")
    after = exposure(client)
    assert (after["unpaid_invoices"], after["open_orders"], after["exposure"]) == (0, 6000, 6000)
    assert balance(client)["unapplied_credit"] == usd(700)


def test_an_unknown_customers_balance_is_404(client: TestClient[Any]) -> None:
    assert_problem(client.get("/erp/v1/customers/NOBODY/balance"), 404, "customer-not-found")
