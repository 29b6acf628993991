"""Credit notes: linked to the invoice and the lines they correct, never more than it
invoiced (units, net, tax per sku), once per cause, serialised per invoice."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
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
    snapshot,
    usd,
)
from tests.support.problems import assert_problem
from tests.support.service import post


@pytest.fixture
def invoice(client: TestClient[Any]) -> dict[str, Any]:
    """CUST-A's invoice of 4 A at 1000 (tax 760) and 2 B at 250 (tax 95): total 5355."""
    customer(client)
    book(client, "ORD-1", [("A", 5, 1000), ("B", 2, 250)])
    return shipped_invoice(client, "ORD-1", "SHP-1", [("A", 4, 1000, 760), ("B", 2, 250, 95)])


def line(invoice_id: str, client: TestClient[Any], sku: str) -> dict[str, Any]:
    found = get(client, f"/erp/v1/invoices/{invoice_id}")
    (hit,) = [x for x in found["lines"] if x["sku"] == sku]
    return dict(hit)


def test_a_credit_note_corrects_the_lines_of_its_invoice(
    client: TestClient[Any], invoice: dict[str, Any]
) -> None:
    invoice_id = invoice["invoice_id"]
    body = credit_body(invoice_id, "DSP-1", [("A", 1, 1000, 190)]) | {"note": "one came back"}
    created = post(client, "/erp/v1/credit-notes", body, key="cn-1")
    assert created.status_code == 201, created.text
    note = created.json()
    assert note["credit_note_id"].startswith("CN-")
    assert (note["invoice_id"], note["order_id"], note["customer_id"]) == (
        invoice_id,
        "ORD-1",
        "CUST-A",
    )
    assert (note["reason"], note["reference"], note["note"]) == ("return", "DSP-1", "one came back")
    assert (note["subtotal"], note["tax"], note["total"]) == (usd(1000), usd(190), usd(1190))
    assert note["lines"] == [{"sku": "A", "quantity": 1, "amount": usd(1000), "tax": usd(190)}]
    assert get(client, f"/erp/v1/credit-notes/{note['credit_note_id']}") == note

    after = get(client, f"/erp/v1/invoices/{invoice_id}")
    assert after["credited"] == usd(1190)
    assert after["outstanding"] == usd(5355 - 1190)
    assert after["status"] == "issued"  # partly credited, nothing paid
    a = line(invoice_id, client, "A")
    assert (a["credited_quantity"], a["credited"], a["credited_tax"]) == (1, usd(1000), usd(190))

    # A price correction credits money without units; the rest of the invoice credited
    # makes it "credited".
    post(
        client,
        "/erp/v1/credit-notes",
        credit_body(invoice_id, "ADJ-1", [("B", 0, 100, 19)], reason="price_correction"),
        key="cn-2",
    )
    rest = credit_body(invoice_id, "DSP-2", [("A", 3, 3000, 570), ("B", 2, 400, 76)])
    assert post(client, "/erp/v1/credit-notes", rest, key="cn-3").status_code == 201
    done = get(client, f"/erp/v1/invoices/{invoice_id}")
    assert (done["credited"], done["outstanding"], done["status"]) == (
        usd(5355),
        usd(0),
        "credited",
    )
    assert balance(client)["balance"] == usd(0)


def test_replay_under_the_same_key_and_a_duplicate_under_another(
    client: TestClient[Any], invoice: dict[str, Any]
) -> None:
    body = credit_body(invoice["invoice_id"], "DSP-1", [("A", 1, 1000, 190)])
    first = post(client, "/erp/v1/credit-notes", body, key="credit:DSP-1")
    again = post(client, "/erp/v1/credit-notes", body, key="credit:DSP-1")
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    # The same cause delivered again under another key: one credit note, its id told.
    problem = assert_problem(
        post(client, "/erp/v1/credit-notes", body, key="other"), 409, "duplicate-credit-note"
    )
    assert problem["credit_note_id"] == first.json()["credit_note_id"]
    assert len(get(client, "/erp/v1/credit-notes")["items"]) == 1
    assert line(invoice["invoice_id"], client, "A")["credited_quantity"] == 1
    # The same reference on another invoice is another cause.
    book(client, "ORD-2", [("A", 1, 1000)])
    other = shipped_invoice(client, "ORD-2", "SHP-2", [("A", 1, 1000, 0)])
    body = credit_body(other["invoice_id"], "DSP-1", [("A", 1, 1000, 0)])
    assert post(client, "/erp/v1/credit-notes", body, key="k-2").status_code == 201


REFUSALS: list[Any] = [
    pytest.param("INV-nope", [("A", 1, 1000, 190)], 422, "unknown-invoice", id="unknown-invoice"),
    pytest.param(None, [("C", 1, 10, 0)], 422, "not-on-invoice", id="not-on-invoice"),
    pytest.param(None, [("A", 0, 0, 0), ("B", 0, 0, 0)], 422, "empty-credit", id="empty-credit"),
    pytest.param(None, [("A", 5, 1000, 0)], 422, "over-credit", id="units"),
    pytest.param(None, [("A", 1, 4001, 0)], 422, "over-credit", id="net"),
    pytest.param(None, [("A", 1, 1000, 761)], 422, "over-credit", id="tax"),
    pytest.param(None, [("A", 3, 3000, 0), ("A", 2, 0, 0)], 422, "over-credit", id="split-lines"),
    pytest.param(None, [("B", 1, 250, 95), ("A", 9, 1, 1)], 422, "over-credit", id="one-bad-line"),
]


@pytest.mark.parametrize(("invoice_id", "lines", "status", "slug"), REFUSALS)
def test_a_refused_credit_note_writes_nothing(
    client: TestClient[Any],
    invoice: dict[str, Any],
    invoice_id: str | None,
    lines: list[tuple[str, int, int, int]],
    status: int,
    slug: str,
) -> None:
    before = snapshot(client)
    body = credit_body(invoice_id or invoice["invoice_id"], "DSP-X", lines)
    problem = assert_problem(post(client, "/erp/v1/credit-notes", body, key="k"), status, slug)
    assert snapshot(client) == before
    if slug == "over-credit":
        assert "invoiced" in problem["detail"] and "asked" in problem["detail"], problem


def test_credits_add_up_to_at_most_the_invoice(
    client: TestClient[Any], invoice: dict[str, Any]
) -> None:
    invoice_id = invoice["invoice_id"]
    first = credit_body(invoice_id, "DSP-1", [("A", 3, 3000, 570)])
    assert post(client, "/erp/v1/credit-notes", first, key="k1").status_code == 201
    before = snapshot(client)
    for n, lines in enumerate(
        [[("A", 2, 1000, 190)], [("A", 1, 1001, 190)], [("A", 1, 1000, 191)]]
    ):
        body = credit_body(invoice_id, f"DSP-{n + 2}", lines)
        problem = assert_problem(
            post(client, "/erp/v1/credit-notes", body, key=f"x{n}"), 422, "over-credit"
        )
        assert "credited" in problem["detail"]
    assert snapshot(client) == before
    last = credit_body(invoice_id, "DSP-9", [("A", 1, 1000, 190)])
    assert post(client, "/erp/v1/credit-notes", last, key="k9").status_code == 201
    a = line(invoice_id, client, "A")
    assert (a["credited_quantity"], a["credited"], a["credited_tax"]) == (4, usd(4000), usd(760))


def test_a_credit_in_another_currency_is_refused(
    client: TestClient[Any], invoice: dict[str, Any]
) -> None:
    before = snapshot(client)
    body = credit_body(invoice["invoice_id"], "DSP-1", [("A", 1, 1000, 190)], currency="EUR")
    assert_problem(post(client, "/erp/v1/credit-notes", body, key="k"), 422, "currency-mismatch")
    mixed = credit_body(invoice["invoice_id"], "DSP-1", [("A", 1, 1000, 190)])
    mixed["lines"][0]["tax"] = usd(190, "EUR")
    assert_problem(post(client, "/erp/v1/credit-notes", mixed, key="k2"), 422, "currency-mismatch")
    bad = credit_body(invoice["invoice_id"], "DSP-1", [("A", -1, 1000, 190)])
    assert_problem(post(client, "/erp/v1/credit-notes", bad, key="k3"), 400, "invalid-request")
    wrong_reason = credit_body(invoice["invoice_id"], "DSP-1", [("A", 1, 1, 0)], reason="gift")
    assert_problem(post(client, "/erp/v1/credit-notes", wrong_reason, key="k4"), 400)
    assert snapshot(client) == before


def test_a_credit_on_a_paid_invoice_moves_the_payment_to_unapplied(
    client: TestClient[Any], invoice: dict[str, Any]
) -> None:
    invoice_id = invoice["invoice_id"]
    older = post(client, "/erp/v1/payments", pay_body(3000), key="p1").json()
    newer = post(client, "/erp/v1/payments", pay_body(2355), key="p2").json()
    assert get(client, f"/erp/v1/invoices/{invoice_id}")["status"] == "paid"
    body = credit_body(invoice_id, "DSP-1", [("A", 2, 2000, 380)])
    assert post(client, "/erp/v1/credit-notes", body, key="cn").status_code == 201
    after = get(client, f"/erp/v1/invoices/{invoice_id}")
    assert (after["paid"], after["credited"], after["outstanding"]) == (
        usd(5355 - 2380),
        usd(2380),
        usd(0),
    )
    assert after["status"] == "paid"
    # The newest payment gives back first: 2355 of it, then 25 of the older one.
    p2 = get(client, f"/erp/v1/payments/{newer['payment_id']}")
    assert (p2["applied"], p2["unapplied"]) == ([], usd(2355))
    p1 = get(client, f"/erp/v1/payments/{older['payment_id']}")
    assert p1["applied"] == [{"invoice_id": invoice_id, "amount": usd(2975)}]
    assert p1["unapplied"] == usd(25)
    figures = balance(client)
    assert (figures["balance"], figures["unapplied_credit"], figures["net"]) == (
        usd(0),
        usd(2380),
        {"amount_minor": -2380, "currency": "USD"},
    )


def test_credit_notes_are_listed_by_invoice_customer_and_reference(
    client: TestClient[Any], invoice: dict[str, Any]
) -> None:
    invoice_id = invoice["invoice_id"]
    for n in range(3):
        body = credit_body(invoice_id, f"DSP-{n}", [("A", 1, 10, 0)])
        assert post(client, "/erp/v1/credit-notes", body, key=f"k{n}").status_code == 201

    def refs(**params: Any) -> list[str]:
        return [c["reference"] for c in get(client, "/erp/v1/credit-notes", **params)["items"]]

    assert refs() == ["DSP-0", "DSP-1", "DSP-2"]
    assert refs(invoice_id=invoice_id, reference="DSP-1") == ["DSP-1"]
    assert refs(customer_id="CUST-A", limit=2) == ["DSP-0", "DSP-1"]
    page = get(client, "/erp/v1/credit-notes", limit=2)
    rest = get(client, "/erp/v1/credit-notes", cursor=page["next_cursor"])
    assert [c["reference"] for c in rest["items"]] == ["DSP-2"]
    assert refs(customer_id="CUST-B") == [] and refs(invoice_id="INV-nope") == []
    assert_problem(client.get("/erp/v1/credit-notes/CN-nope"), 404, "credit-note-not-found")


def test_concurrent_credit_notes_never_exceed_the_invoice(
    client: TestClient[Any], invoice: dict[str, Any]
) -> None:
    """Twelve returns of one unit each against 4 invoiced, all at once (SQLite and
    PostgreSQL): four credited, eight refused, the line credited exactly 4."""
    invoice_id = invoice["invoice_id"]

    def credit(n: int) -> int:
        body = credit_body(invoice_id, f"DSP-{n}", [("A", 1, 1000, 190)])
        return int(post(client, "/erp/v1/credit-notes", body, key=f"c{n}").status_code)

    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(pool.map(credit, range(12)))
    assert sorted(statuses) == [201] * 4 + [422] * 8
    a = line(invoice_id, client, "A")
    assert (a["credited_quantity"], a["credited"], a["credited_tax"]) == (4, usd(4000), usd(760))
    assert get(client, f"/erp/v1/invoices/{invoice_id}")["credited"] == usd(4760)
    assert len(get(client, "/erp/v1/credit-notes")["items"]) == 4


def test_concurrent_credits_and_payments_keep_the_outstanding_at_least_zero(
    client: TestClient[Any], invoice: dict[str, Any]
) -> None:
    invoice_id = invoice["invoice_id"]

    def act(n: int) -> int:
        if n % 2:
            body = credit_body(invoice_id, f"DSP-{n}", [("A", 1, 1000, 190)])
            return int(post(client, "/erp/v1/credit-notes", body, key=f"c{n}").status_code)
        pay = pay_body(1000, applications=None)
        return int(post(client, "/erp/v1/payments", pay, key=f"p{n}").status_code)

    with ThreadPoolExecutor(max_workers=10) as pool:
        list(pool.map(act, range(20)))
    found = get(client, f"/erp/v1/invoices/{invoice_id}")
    assert found["outstanding"]["amount_minor"] >= 0
    total = found["total"]["amount_minor"]
    assert found["paid"]["amount_minor"] + found["credited"]["amount_minor"] <= total
    payments = get(client, "/erp/v1/payments", limit=500)["items"]
    applied = sum(a["amount"]["amount_minor"] for p in payments for a in p["applied"])
    assert applied == found["paid"]["amount_minor"]
    unapplied = sum(p["unapplied"]["amount_minor"] for p in payments)
    assert applied + unapplied == 10 * 1000
    figures = balance(client)
    assert figures["balance"] == found["outstanding"]
    assert figures["unapplied_credit"] == usd(unapplied)
