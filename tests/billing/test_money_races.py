"""Concurrent payments and credit notes on one invoice never take more than it holds,
on SQLite and on PostgreSQL: billing and the ERP on real ports (each on the database
under test), the invoice issued straight in the ERP (billing mirrors it when money
moves on it)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from tests.billing.helpers import (
    adjust,
    billing_get,
    book_sales_order,
    erp_get,
    events_about,
    money,
    pay,
    post_goods_issue,
)
from tests.orders.helpers import new_customer, uid
from tests.support.polling import wait_until
from tests.support.servers import create_database
from tests.support.stack import Stack, ThreadServer
from tests.support.tokens import TestIssuer

pytestmark = pytest.mark.slow  # starts services as processes or a stack on real ports

UNITS, PRICE = 4, 1000  # an invoice of 4000 net + 800 tax = 4800


class DatabaseStack(Stack):
    """A stack whose services keep their data in the given databases."""

    def __init__(self, *args: Any, databases: dict[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.databases = databases

    def settings(self, service: str, **changes: Any) -> Any:
        settings = super().settings(service, **changes)
        if service in self.databases:
            settings = msgspec.structs.replace(settings, database_url=self.databases[service])
        return settings


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def money_stack(
    request: pytest.FixtureRequest, tmp_path: Path, issuer: TestIssuer
) -> Iterator[Stack]:
    databases: dict[str, str] = {}
    if request.param == "postgres":
        cluster: str = request.getfixturevalue("postgres_cluster")
        suffix = uuid.uuid4().hex[:8]
        databases = {
            name: create_database(cluster, f"{name}_{suffix}") for name in ("erp", "billing")
        }
    with DatabaseStack(tmp_path, issuer, ["erp", "billing"], databases=databases) as stack:
        yield stack


def erp_invoice(stack: Stack) -> tuple[str, str]:
    """(customer, invoice id) of an invoice issued in the ERP for a posted shipment."""
    customer_id = new_customer(stack)
    order_id, shipment_id = uid("ORD"), uid("SHP")
    book_sales_order(stack, order_id, customer_id, [("SKU-A", UNITS, PRICE)])
    post_goods_issue(stack, shipment_id, [("SKU-A", UNITS)])
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
                        "quantity": UNITS,
                        "unit_price": money(PRICE),
                        "tax": money(UNITS * PRICE // 5),
                        "tax_code": "any-standard-2000",
                    }
                ],
            },
            headers={"Idempotency-Key": uid("inv")},
        )
    assert created.status_code == 201, created.text
    return customer_id, str(created.json()["invoice_id"])


def together(calls: list[Callable[[], Any]]) -> list[Any]:
    """Runs the calls at once (released by one barrier), answers in call order."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], Any]) -> Any:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def settled(stack: Stack, invoice_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ERP's invoice and billing's mirror of it, once they agree."""
    seen: dict[str, Any] = {}

    def agree() -> bool:
        seen["erp"] = erp_get(stack, f"/erp/v1/invoices/{invoice_id}")
        seen["billing"] = billing_get(stack, f"/billing/v1/invoices/{invoice_id}")
        fields = ("status", "paid", "credited", "outstanding")
        return all(seen["erp"][f] == seen["billing"][f] for f in fields)

    wait_until(agree, what=f"billing's mirror of {invoice_id}: {seen}")
    return seen["erp"], seen["billing"]


def test_concurrent_payments_never_pay_more_than_the_invoice(money_stack: Stack) -> None:
    stack = money_stack
    customer_id, invoice_id = erp_invoice(stack)
    answers = together(
        [lambda: pay(stack, customer_id, 1000, [(invoice_id, 1000)]) for _ in range(10)]
    )
    codes = sorted(a.status_code for a in answers)
    assert codes == [201] * 4 + [422] * 6, [a.text for a in answers]
    for refused in (a for a in answers if a.status_code == 422):
        assert refused.json()["type"] == "/problems/over-application", refused.text
    erp, mirror = settled(stack, invoice_id)
    assert (erp["paid"], erp["outstanding"], erp["status"]) == (
        money(4000),
        money(800),
        "partially_paid",
    )
    listed = billing_get(stack, "/billing/v1/payments", params={"customer_id": customer_id})
    assert len(listed["items"]) == 4
    assert len(erp_get(stack, "/erp/v1/payments", {"customer_id": customer_id})["items"]) == 4
    assert len(events_about(stack, "payment.received", customer_id, relayed=4)) == 4
    assert mirror["paid"] == money(4000)


def test_concurrent_credit_notes_and_payments_never_exceed_the_invoice(
    money_stack: Stack,
) -> None:
    stack = money_stack
    customer_id, invoice_id = erp_invoice(stack)
    prices = [900, 700, 500, 800, 600, 950, 650, 750]

    def correction(price: int) -> Callable[[], Any]:
        return lambda: adjust(stack, invoice_id, [("SKU-A", price)])

    calls = [correction(p) for p in prices]
    calls += [lambda: pay(stack, customer_id, 1500, [(invoice_id, 1500)]) for _ in range(4)]
    answers = together(calls)
    corrections, payments = answers[: len(prices)], answers[len(prices) :]
    for answer in corrections:
        assert answer.status_code in (201, 422), answer.text
        if answer.status_code == 422:
            assert answer.json()["type"] in (
                "/problems/price-not-lower",
                "/problems/over-credit",
            ), answer.text
    for answer in payments:
        assert answer.status_code in (201, 422), answer.text
    erp, mirror = settled(stack, invoice_id)
    (line,) = erp["lines"]
    total = erp["total"]["amount_minor"]
    credited, paid = erp["credited"]["amount_minor"], erp["paid"]["amount_minor"]
    assert credited + paid <= total and erp["outstanding"]["amount_minor"] >= 0
    assert line["credited"]["amount_minor"] <= line["amount"]["amount_minor"]
    assert line["credited_tax"]["amount_minor"] <= line["tax"]["amount_minor"]
    # Corrections of one invoice take turns: together they bring the price down to the
    # lowest accepted one, never further.
    accepted = [p for p, a in zip(prices, corrections, strict=True) if a.status_code == 201]
    assert accepted and min(accepted) == min(prices)
    assert line["credited"]["amount_minor"] == UNITS * (PRICE - min(prices))
    notes = erp_get(stack, "/erp/v1/credit-notes", {"invoice_id": invoice_id})["items"]
    assert sum(n["total"]["amount_minor"] for n in notes) == credited
    mine = billing_get(stack, "/billing/v1/credit-notes", params={"invoice_id": invoice_id})
    assert {n["credit_note_id"] for n in mine["items"]} == {n["credit_note_id"] for n in notes}
    assert mirror["credited"] == erp["credited"]


def test_price_corrections_through_two_billing_workers_take_turns(money_stack: Stack) -> None:
    """Two billing processes on one database (workers): corrections of one invoice sent
    to both at once still take turns (the invoice's claim row), so together they bring
    the price down to the lowest one and never credit a difference twice."""
    stack = money_stack
    _, invoice_id = erp_invoice(stack)
    second = ThreadServer(stack.app("billing"))
    second.start()
    try:
        token = stack.token("billing", "billing:admin")
        prices = [900, 700, 500, 800, 600, 950, 650, 750, 550, 850]

        def correction(n: int, price: int) -> Callable[[], Any]:
            url = second.url if n % 2 else stack.urls["billing"]

            def send() -> Any:
                with httpx.Client(
                    base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60
                ) as billing:
                    return billing.post(
                        f"/billing/v1/invoices/{invoice_id}/adjustments",
                        json={
                            "reason": "Agreed price",
                            "lines": [{"sku": "SKU-A", "unit_price": money(price)}],
                        },
                        headers={"Idempotency-Key": uid("adj")},
                    )

            return send

        answers = together([correction(n, p) for n, p in enumerate(prices)])
    finally:
        second.stop()
    for answer in answers:
        assert answer.status_code in (201, 422), answer.text
    erp, _ = settled(stack, invoice_id)
    (line,) = erp["lines"]
    assert line["credited"]["amount_minor"] == UNITS * (PRICE - min(prices))
    assert line["credited_tax"]["amount_minor"] == UNITS * (PRICE - min(prices)) // 5
