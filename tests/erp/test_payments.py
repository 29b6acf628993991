"""Payments: applied to named invoices (each at most its outstanding) or to the oldest
due first, the rest kept as unapplied credit; refused with a problem and nothing written;
concurrent payments never pay an invoice twice."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from litestar.testing import TestClient

from tests.erp.money import (
    book,
    customer,
    get,
    pay_body,
    shipped_invoice,
    snapshot,
    usd,
)
from tests.support.problems import assert_problem
from tests.support.service import post


@pytest.fixture
def invoices(client: TestClient[Any]) -> list[str]:
    """CUST-A's two invoices: the first (net60) of 1000 + 100 tax, the second (issued
    after the terms became net15, so due first) of 500."""
    customer(client, terms="net60")
    customer(client, "CUST-B")
    book(client, "ORD-1", [("A", 10, 1000), ("B", 10, 500)])
    first = shipped_invoice(client, "ORD-1", "SHP-1", [("A", 1, 1000, 100)])
    client.patch("/erp/v1/customers/CUST-A", json={"payment_terms": "net15"})
    second = shipped_invoice(client, "ORD-1", "SHP-2", [("B", 1, 500, 0)])
    assert second["due_date"] < first["due_date"]
    return [first["invoice_id"], second["invoice_id"]]


def status(client: TestClient[Any], invoice_id: str) -> tuple[str, int, int]:
    found = get(client, f"/erp/v1/invoices/{invoice_id}")
    return found["status"], found["paid"]["amount_minor"], found["outstanding"]["amount_minor"]


def test_a_payment_without_invoices_pays_the_oldest_due_first(
    client: TestClient[Any], invoices: list[str]
) -> None:
    first, second = invoices
    created = post(
        client,
        "/erp/v1/payments",
        pay_body(700) | {"reference": "REMIT 42", "received_on": "2026-01-02"},
        key="p1",
    )
    assert created.status_code == 201, created.text
    payment = created.json()
    assert payment["payment_id"].startswith("PAY-")
    assert (payment["customer_id"], payment["amount"], payment["reference"]) == (
        "CUST-A",
        usd(700),
        "REMIT 42",
    )
    assert payment["received_on"] == "2026-01-02"
    assert payment["applied"] == [
        {"invoice_id": second, "amount": usd(500)},
        {"invoice_id": first, "amount": usd(200)},
    ]
    assert payment["unapplied"] == usd(0)
    assert get(client, f"/erp/v1/payments/{payment['payment_id']}") == payment
    assert status(client, second) == ("paid", 500, 0)
    assert status(client, first) == ("partially_paid", 200, 900)
    # More than is open: the rest is the customer's credit.
    more = post(client, "/erp/v1/payments", pay_body(1000), key="p2").json()
    assert more["applied"] == [{"invoice_id": first, "amount": usd(900)}]
    assert more["unapplied"] == usd(100)
    assert status(client, first) == ("paid", 1100, 0)
    # Nothing open: all of it unapplied.
    idle = post(client, "/erp/v1/payments", pay_body(5), key="p3").json()
    assert (idle["applied"], idle["unapplied"]) == ([], usd(5))


def test_a_payment_naming_invoices_pays_those(client: TestClient[Any], invoices: list[str]) -> None:
    first, second = invoices
    body = pay_body(1000, applications=[(first, 600), (second, 100)])
    payment = post(client, "/erp/v1/payments", body, key="p1").json()
    assert payment["applied"] == [
        {"invoice_id": first, "amount": usd(600)},
        {"invoice_id": second, "amount": usd(100)},
    ]
    assert payment["unapplied"] == usd(300)
    assert status(client, first) == ("partially_paid", 600, 500)
    assert status(client, second) == ("partially_paid", 100, 400)
    assert payment["received_on"]  # today when not given


def test_the_invoices_a_remittance_touched_are_read_back_in_one_call(
    client: TestClient[Any], invoices: list[str]
) -> None:
    first, second = invoices
    body = pay_body(700, applications=[(first, 600), (second, 100)])
    assert post(client, "/erp/v1/payments", body, key="p1").status_code == 201
    params = [("invoice_id", second), ("invoice_id", "INV-NONE"), ("invoice_id", first)]
    read = client.get("/erp/v1/invoices", params=params)
    assert read.status_code == 200, read.text
    found = {
        i["invoice_id"]: (i["status"], i["paid"]["amount_minor"]) for i in read.json()["items"]
    }
    assert found == {first: ("partially_paid", 600), second: ("partially_paid", 100)}
    one = client.get("/erp/v1/invoices", params={"invoice_id": first}).json()["items"]
    assert [i["invoice_id"] for i in one] == [first]
    too_many = client.get("/erp/v1/invoices", params=[("invoice_id", f"I{n}") for n in range(101)])
    assert too_many.status_code == 400


def test_replay_under_the_same_key_pays_once(client: TestClient[Any], invoices: list[str]) -> None:
    first = post(client, "/erp/v1/payments", pay_body(300), key="remit-1")
    again = post(client, "/erp/v1/payments", pay_body(300), key="remit-1")
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert len(get(client, "/erp/v1/payments")["items"]) == 1
    assert status(client, invoices[1])[1] == 300
    reused = post(client, "/erp/v1/payments", pay_body(301), key="remit-1")
    assert_problem(reused, 422, "idempotency-key-reused")


def _refusals(first: str, second: str) -> list[tuple[dict[str, Any], int, str]]:
    return [
        (pay_body(0), 422, "invalid-amount"),
        (pay_body(10, applications=[(first, 0)]), 422, "invalid-amount"),
        (pay_body(-1), 400, "invalid-request"),
        (pay_body(10, currency="EUR"), 422, "currency-mismatch"),
        (
            pay_body(10) | {"applications": [{"invoice_id": first, "amount": usd(10, "EUR")}]},
            422,
            "currency-mismatch",
        ),
        (pay_body(10, customer_id="NOBODY"), 422, "unknown-customer"),
        (pay_body(10, applications=[("INV-nope", 10)]), 422, "unknown-invoice"),
        (pay_body(10, customer_id="CUST-B", applications=[(first, 10)]), 422, "unknown-invoice"),
        (pay_body(2000, applications=[(first, 1101)]), 422, "over-application"),
        (pay_body(600, applications=[(first, 500), (second, 101)]), 422, "over-application"),
        (pay_body(600, applications=[(first, 100), (first, 100)]), 422, "duplicate-application"),
        (pay_body(10) | {"reference": "bad\u0007ref"}, 400, "invalid-request"),
    ]


def test_a_refused_payment_writes_nothing(client: TestClient[Any], invoices: list[str]) -> None:
    before = snapshot(client)
    for n, (body, code, slug) in enumerate(_refusals(*invoices)):
        refused = post(client, "/erp/v1/payments", body, key=f"bad-{n}")
        assert_problem(refused, code, slug)
        assert snapshot(client) == before, body
    # A payment after the partial one may not take more than is left.
    post(client, "/erp/v1/payments", pay_body(1000, applications=[(invoices[0], 1000)]), key="ok")
    over = pay_body(200, applications=[(invoices[0], 101)])
    problem = assert_problem(
        post(client, "/erp/v1/payments", over, key="x"), 422, "over-application"
    )
    assert "100 outstanding" in problem["detail"], problem


def test_payments_are_listed_by_customer(client: TestClient[Any], invoices: list[str]) -> None:
    for n in range(3):
        post(client, "/erp/v1/payments", pay_body(10), key=f"a{n}")
    post(client, "/erp/v1/payments", pay_body(10, customer_id="CUST-B"), key="b")
    assert len(get(client, "/erp/v1/payments", customer_id="CUST-A")["items"]) == 3
    assert len(get(client, "/erp/v1/payments", customer_id="CUST-B")["items"]) == 1
    page = get(client, "/erp/v1/payments", limit=3)
    assert len(page["items"]) == 3 and page["next_cursor"]
    assert_problem(client.get("/erp/v1/payments/PAY-nope"), 404, "payment-not-found")


def test_concurrent_payments_never_overpay_an_invoice(
    client: TestClient[Any], invoices: list[str]
) -> None:
    """Sixteen payments of 100 each naming the 1100 invoice, all at once (SQLite and
    PostgreSQL): eleven applied, five refused over-application."""
    first = invoices[0]

    def pay(n: int) -> int:
        body = pay_body(100, applications=[(first, 100)])
        return int(post(client, "/erp/v1/payments", body, key=f"p{n}").status_code)

    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(pay, range(16)))
    assert sorted(statuses) == [201] * 11 + [422] * 5
    assert status(client, first) == ("paid", 1100, 0)


def test_concurrent_unnamed_payments_fill_the_invoices_then_credit(
    client: TestClient[Any], invoices: list[str]
) -> None:
    def pay(n: int) -> int:
        return int(post(client, "/erp/v1/payments", pay_body(200), key=f"p{n}").status_code)

    with ThreadPoolExecutor(max_workers=10) as pool:
        assert set(pool.map(pay, range(10))) == {201}
    assert status(client, invoices[0]) == ("paid", 1100, 0)
    assert status(client, invoices[1]) == ("paid", 500, 0)
    figures = get(client, "/erp/v1/customers/CUST-A/balance")
    assert (figures["balance"], figures["paid"], figures["unapplied_credit"]) == (
        usd(0),
        usd(1600),
        usd(2000 - 1600),
    )
