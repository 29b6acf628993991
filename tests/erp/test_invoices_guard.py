"""Invoices at the ERP boundary: billed after the shipment's goods issue is posted, for a
booked sales order, at its prices, at most what was shipped; tax lines, payment terms and
due dates; and the upgrade of a database an earlier version created."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from shared.settings import Settings
from system_apis.erp.app import create_app
from tests.erp.money import (
    book,
    customer,
    get,
    goods_issue,
    invoice,
    invoice_body,
    key,
    shipped_invoice,
    snapshot,
    usd,
)
from tests.support.problems import assert_problem
from tests.support.service import post
from tests.support.tokens import TestIssuer

BODY = invoice_body("ORD-1", "SHP-1", [("A", 3, 1000, 190), ("B", 2, 250, 0)])


def today() -> date:
    return datetime.now(UTC).date()


@pytest.fixture
def booked(client: TestClient[Any]) -> None:
    """CUST-A (USD, net30) with ORD-1 booked: 5 A at 1000 and 2 B at 250."""
    customer(client)
    book(client, "ORD-1", [("A", 5, 1000), ("B", 2, 250)])


@pytest.mark.usefixtures("booked")
def test_an_invoice_of_a_posted_shipment_carries_tax_terms_and_due_date(
    client: TestClient[Any],
) -> None:
    goods_issue(client, "SHP-1", [("A", 3), ("B", 2)])
    issued = invoice(client, BODY)
    assert issued["subtotal"] == usd(3500)
    assert issued["tax"] == usd(190)
    assert issued["total"] == usd(3690)
    assert (issued["paid"], issued["credited"], issued["outstanding"]) == (
        usd(0),
        usd(0),
        usd(3690),
    )
    assert issued["status"] == "issued" and issued["overdue"] is False
    assert issued["payment_terms"] == "net30"
    assert issued["due_date"] == (today() + timedelta(days=30)).isoformat()
    assert [(x["line_no"], x["sku"], x["amount"], x["tax"]) for x in issued["lines"]] == [
        (1, "A", usd(3000), usd(190)),
        (2, "B", usd(500), usd(0)),
    ]
    first = issued["lines"][0]
    assert first["tax_code"] == "VAT" and issued["lines"][1]["tax_code"] is None
    assert (first["credited_quantity"], first["credited"], first["credited_tax"]) == (
        0,
        usd(0),
        usd(0),
    )
    assert get(client, f"/erp/v1/invoices/{issued['invoice_id']}") == issued
    # The order's invoiced value is net: the tax is not the order's.
    assert get(client, "/erp/v1/sales-orders/ORD-1")["invoiced"] == usd(3500)


@pytest.mark.parametrize(("terms", "days"), [("prepaid", 0), ("net15", 15), ("net60", 60)])
def test_the_due_date_follows_the_customers_terms_at_issue(
    client: TestClient[Any], terms: str, days: int
) -> None:
    customer(client, terms=terms)
    book(client, "ORD-1", [("A", 1, 100)])
    issued = shipped_invoice(client, "ORD-1", "SHP-1", [("A", 1, 100, 0)])
    assert issued["payment_terms"] == terms
    assert issued["due_date"] == (today() + timedelta(days=days)).isoformat()
    assert issued["overdue"] is False  # due today at the earliest
    # Terms changed later leave an issued invoice's due date alone.
    client.patch("/erp/v1/customers/CUST-A", json={"payment_terms": "net30"})
    assert get(client, f"/erp/v1/invoices/{issued['invoice_id']}")["due_date"] == issued["due_date"]


def _other_shipment(client: TestClient[Any]) -> None:
    goods_issue(client, "SHP-OTHER", [("A", 5), ("B", 2)])


REFUSALS: list[Any] = [
    # (what is in place, body, status, slug)
    pytest.param(["order"], BODY, 409, "shipment-not-posted", id="no-goods-issue"),
    pytest.param(["order", "other"], BODY, 409, "shipment-not-posted", id="other-shipment"),
    pytest.param(["issue"], BODY, 409, "order-not-booked", id="order-not-booked"),
    pytest.param(
        ["order", "issue", "cust-b"],
        invoice_body("ORD-1", "SHP-1", [("A", 1, 1000)], customer_id="CUST-B"),
        422,
        "customer-mismatch",
        id="customer-mismatch",
    ),
    pytest.param(
        ["order", "issue"],
        invoice_body("ORD-1", "SHP-1", [("A", 1, 1000), ("FREIGHT", 1, 700)]),
        422,
        "not-on-order",
        id="not-on-order",
    ),
    pytest.param(
        ["order", "issue"],
        invoice_body("ORD-1", "SHP-1", [("A", 1, 999)]),
        422,
        "price-mismatch",
        id="price-mismatch",
    ),
    pytest.param(
        ["order", "issue"],
        invoice_body("ORD-1", "SHP-1", [("A", 4, 1000)]),
        422,
        "over-billing",
        id="over-billing",
    ),
    pytest.param(
        ["order", "issue"],
        invoice_body("ORD-1", "SHP-1", [("A", 2, 1000), ("A", 2, 1000)]),
        422,
        "over-billing",
        id="over-billing-split-lines",
    ),
    pytest.param(
        ["order", "issue"],
        invoice_body("ORD-1", "SHP-1", [("A", 1, 1000)], currency="EUR"),
        422,
        "currency-mismatch",
        id="currency-mismatch",
    ),
    pytest.param(
        ["order", "issue"],
        {
            **invoice_body("ORD-1", "SHP-1", [("A", 1, 1000)]),
            "lines": [{"sku": "A", "quantity": 1, "unit_price": usd(1000), "tax": usd(1, "EUR")}],
        },
        422,
        "mixed-currencies",
        id="mixed-currencies",
    ),
]


@pytest.mark.parametrize(("setup", "body", "status", "slug"), REFUSALS)
def test_a_refused_invoice_writes_nothing(
    client: TestClient[Any], setup: list[str], body: dict[str, Any], status: int, slug: str
) -> None:
    customer(client)
    if "cust-b" in setup:
        customer(client, "CUST-B")
    if "order" in setup:
        book(client, "ORD-1", [("A", 5, 1000), ("B", 2, 250)])
    if "issue" in setup:
        goods_issue(client, "SHP-1", [("A", 3), ("B", 2)])
    if "other" in setup:
        _other_shipment(client)
    before = snapshot(client)
    refused = post(client, "/erp/v1/invoices", body, key="k1")
    problem = assert_problem(refused, status, slug)
    assert snapshot(client) == before
    if slug == "over-billing":
        assert "invoiced" in problem["detail"] and "took 3" in problem["detail"], problem


def test_a_wait_then_the_same_key_issues_the_invoice(client: TestClient[Any]) -> None:
    """Billing retries under one key until the goods issue and the order are posted."""
    customer(client)
    assert_problem(
        post(client, "/erp/v1/invoices", BODY, key="inv:SHP-1"), 409, "shipment-not-posted"
    )
    goods_issue(client, "SHP-1", [("A", 3), ("B", 2)])
    assert_problem(post(client, "/erp/v1/invoices", BODY, key="inv:SHP-1"), 409, "order-not-booked")
    book(client, "ORD-1", [("A", 5, 1000), ("B", 2, 250)])
    issued = post(client, "/erp/v1/invoices", BODY, key="inv:SHP-1")
    assert issued.status_code == 201, issued.text
    replayed = post(client, "/erp/v1/invoices", BODY, key="inv:SHP-1")
    assert replayed.json() == issued.json()
    assert replayed.headers["idempotent-replayed"] == "true"
    # The shipment is invoiced once: another key is 409 duplicate-invoice.
    assert_problem(post(client, "/erp/v1/invoices", BODY, key="other"), 409, "duplicate-invoice")
    assert len(get(client, "/erp/v1/invoices")["items"]) == 1


@pytest.mark.usefixtures("booked")
def test_each_shipment_bills_its_own_goods_issue(client: TestClient[Any]) -> None:
    """Per sku: invoiced over all shipments <= shipped over all of them."""
    first = shipped_invoice(client, "ORD-1", "SHP-1", [("A", 3, 1000, 0)])
    second = shipped_invoice(client, "ORD-1", "SHP-2", [("A", 2, 1000, 0), ("B", 2, 250, 0)])
    # A third shipment may only bill what its goods issue took.
    goods_issue(client, "SHP-3", [("B", 1)])
    assert_problem(
        post(
            client, "/erp/v1/invoices", invoice_body("ORD-1", "SHP-3", [("A", 1, 1000)]), key=key()
        ),
        422,
        "over-billing",
    )
    assert first["total"] == usd(3000) and second["total"] == usd(2500)
    so = get(client, "/erp/v1/sales-orders/ORD-1")
    assert (so["invoiced"], so["open_value"]) == (usd(5500), usd(0))


def test_invoices_are_listed_by_order_customer_and_status(client: TestClient[Any]) -> None:
    customer(client)
    customer(client, "CUST-B")
    book(client, "ORD-1", [("A", 5, 100)])
    book(client, "ORD-2", [("A", 5, 100)], customer_id="CUST-B")
    a = shipped_invoice(client, "ORD-1", "SHP-1", [("A", 1, 100, 0)])
    b = shipped_invoice(client, "ORD-2", "SHP-2", [("A", 1, 100, 0)], customer_id="CUST-B")

    def ids(**params: Any) -> list[str]:
        return [i["invoice_id"] for i in get(client, "/erp/v1/invoices", **params)["items"]]

    assert ids() == sorted([a["invoice_id"], b["invoice_id"]])
    assert ids(customer_id="CUST-B") == [b["invoice_id"]]
    assert ids(order_id="ORD-1") == [a["invoice_id"]]
    assert ids(status="issued", customer_id="CUST-A") == [a["invoice_id"]]
    assert ids(status="paid") == []
    paid = post(client, "/erp/v1/payments", {"customer_id": "CUST-A", "amount": usd(100)}, key="p")
    assert paid.status_code == 201, paid.text
    assert ids(status="paid") == [a["invoice_id"]]
    assert_problem(client.get("/erp/v1/invoices", params={"status": "lost"}), 400)
    assert_problem(client.get("/erp/v1/invoices/INV-nope"), 404, "invoice-not-found")


def test_an_invoice_past_its_due_date_is_overdue(
    client: TestClient[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    customer(client, terms="net15")
    book(client, "ORD-1", [("A", 5, 100)])
    issued = shipped_invoice(client, "ORD-1", "SHP-1", [("A", 2, 100, 0)])
    path = f"/erp/v1/invoices/{issued['invoice_id']}"
    later = today() + timedelta(days=16)
    from system_apis.erp.adapters import invoices, payments

    monkeypatch.setattr(invoices, "today", lambda: later)
    monkeypatch.setattr(payments, "today", lambda: later)
    assert get(client, path)["overdue"] is True
    post(client, "/erp/v1/payments", {"customer_id": "CUST-A", "amount": usd(200)}, key="p")
    assert get(client, path)["overdue"] is False  # nothing outstanding


def test_items_carry_a_tax_class(client: TestClient[Any]) -> None:
    plain = {"sku": "A", "name": "A", "unit_price": usd(1)}
    assert client.post("/erp/v1/items", json=plain).json()["tax_class"] == "standard"
    food = {"sku": "F", "name": "F", "unit_price": usd(1), "tax_class": "reduced"}
    assert client.post("/erp/v1/items", json=food).status_code == 201
    assert get(client, "/erp/v1/items/F")["tax_class"] == "reduced"
    bad = {"sku": "X", "name": "X", "unit_price": usd(1), "tax_class": "has space"}
    assert_problem(client.post("/erp/v1/items", json=bad), 400, "invalid-request")


def test_invoices_and_items_of_an_older_database_are_upgraded(
    settings: Settings, issuer: TestIssuer
) -> None:
    """A database of issue 16 (items without tax class; invoices without subtotal, tax,
    terms, due date, paid and credited; no credit notes or payments) is upgraded at
    start: an old invoice's subtotal is its total, due 30 days after issue."""
    headers = {"Authorization": f"Bearer {issuer.token('erp:read erp:write', audience='erp')}"}
    with TestClient(create_app(settings=settings, key_source=issuer.key_source())) as client:
        client.headers.update(headers)
        customer(client, terms="net60")
        item = {"sku": "A", "name": "A", "unit_price": usd(5)}
        assert client.post("/erp/v1/items", json=item).status_code == 201
        book(client, "ORD-1", [("A", 5, 100)])
        issued = shipped_invoice(client, "ORD-1", "SHP-1", [("A", 2, 100, 0)])

    async def downgrade() -> None:
        engine = create_async_engine(settings.database_url)
        async with engine.begin() as conn:
            for table in ("payment_applications", "payments", "credit_note_lines", "credit_notes"):
                await conn.execute(text(f"DROP TABLE {table}"))
            await conn.execute(text("ALTER TABLE items DROP COLUMN tax_class"))
            await conn.execute(text("ALTER TABLE inventory_postings DROP COLUMN order_id"))
            for column in (
                "subtotal_minor",
                "tax_minor",
                "credited_minor",
                "paid_minor",
                "payment_terms",
                "due_date",
            ):
                await conn.execute(text(f"ALTER TABLE invoices DROP COLUMN {column}"))
            for column in (
                "tax_minor",
                "tax_code",
                "credited_quantity",
                "credited_minor",
                "credited_tax_minor",
            ):
                await conn.execute(text(f"ALTER TABLE invoice_lines DROP COLUMN {column}"))
        await engine.dispose()

    asyncio.run(downgrade())
    with TestClient(create_app(settings=settings, key_source=issuer.key_source())) as client:
        client.headers.update(headers)
        assert get(client, "/erp/v1/items/A")["tax_class"] == "standard"
        # Goods issues name their order again (decision 0045).
        named = {
            "kind": "goods_issue",
            "reference": "SHP-2",
            "warehouse_id": "WH1",
            "lines": [{"sku": "A", "quantity_delta": -1}],
            "order_id": "ORD-1",
        }
        posted = post(client, "/erp/v1/inventory/postings", named, key="gi-2")
        assert (posted.status_code, posted.json()["order_id"]) == (201, "ORD-1")
        old = get(client, f"/erp/v1/invoices/{issued['invoice_id']}")
        created = datetime.fromisoformat(issued["created_at"]).date()
        assert old["due_date"] == (created + timedelta(days=30)).isoformat()  # then: net30
        assert old["payment_terms"] == "net30"
        assert (old["subtotal"], old["tax"], old["total"]) == (usd(200), usd(0), usd(200))
        assert old["outstanding"] == usd(200) and old["status"] == "issued"
        assert old["lines"][0]["credited_quantity"] == 0
        # The money of the old invoice moves like any other.
        note = {
            "invoice_id": issued["invoice_id"],
            "reason": "return",
            "reference": "DSP-1",
            "lines": [{"sku": "A", "quantity": 1, "amount": usd(100), "tax": usd(0)}],
        }
        assert post(client, "/erp/v1/credit-notes", note, key="cn").status_code == 201
        paid = post(
            client, "/erp/v1/payments", {"customer_id": "CUST-A", "amount": usd(100)}, key="p"
        )
        assert paid.status_code == 201, paid.text
        assert get(client, f"/erp/v1/invoices/{issued['invoice_id']}")["status"] == "paid"
        assert get(client, "/erp/v1/customers/CUST-A/balance")["balance"] == usd(0)
