"""A billing database created before issue 17 (invoices without tax or settlement
columns) is brought up to date at start-up: an old invoice reads as all net, nothing
paid or credited, its total outstanding."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from shared.settings import load_settings
from tests.support.service import service_client
from tests.support.tokens import TestIssuer

OLD_SCHEMA = """
CREATE TABLE invoices (
    invoice_id VARCHAR(64) NOT NULL PRIMARY KEY,
    order_id VARCHAR(64) NOT NULL,
    shipment_id VARCHAR(64) NOT NULL UNIQUE,
    customer_id VARCHAR(64) NOT NULL,
    status VARCHAR(16) NOT NULL,
    total_minor BIGINT NOT NULL,
    currency VARCHAR(3) NOT NULL,
    issued_at DATETIME NOT NULL
);
CREATE TABLE invoice_lines (
    invoice_id VARCHAR(64) NOT NULL REFERENCES invoices (invoice_id),
    line_no INTEGER NOT NULL,
    sku VARCHAR(64) NOT NULL,
    quantity BIGINT NOT NULL,
    unit_price_minor BIGINT NOT NULL,
    amount_minor BIGINT NOT NULL,
    PRIMARY KEY (invoice_id, line_no)
);
INSERT INTO invoices VALUES
    ('INV-OLD', 'ORD-OLD', 'SHP-OLD', 'CUST-OLD', 'issued', 2500, 'USD',
     '2026-01-02 03:04:05.000000');
INSERT INTO invoice_lines VALUES ('INV-OLD', 1, 'SKU-A', 2, 1250, 2500);
"""


@pytest.fixture(autouse=True)
def _embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TALLY_DATABASE_URL", "TALLY_BILLING_DATABASE_URL", "TALLY_BUS_URL"):
        monkeypatch.delenv(name, raising=False)


def test_an_old_database_gets_the_new_columns(tmp_path: Path, issuer: TestIssuer) -> None:
    with sqlite3.connect(tmp_path / "billing.db") as conn:
        conn.executescript(OLD_SCHEMA)
    settings = load_settings("billing", data_dir=tmp_path)
    with service_client("billing", settings, issuer, "billing:read") as client:
        response = client.get("/billing/v1/invoices/INV-OLD")
    assert response.status_code == 200, response.text
    invoice = response.json()
    usd = {"amount_minor": 2500, "currency": "USD"}
    nothing = {"amount_minor": 0, "currency": "USD"}
    assert (invoice["status"], invoice["total"], invoice["subtotal"]) == ("issued", usd, usd)
    assert (invoice["tax"], invoice["paid"], invoice["credited"]) == (nothing, nothing, nothing)
    assert invoice["outstanding"] == usd
    assert invoice["due_date"] is None and invoice["overdue"] is False
    (line,) = invoice["lines"]
    assert (line["tax"], line["credited_quantity"], line["credited"]) == (nothing, 0, nothing)
    # Started again: nothing to add, nothing changed.
    with service_client("billing", settings, issuer, "billing:read") as client:
        assert client.get("/billing/v1/invoices/INV-OLD").json() == invoice


# What a customer's remittance clerk reads on each pass: the invoices still owed after
# the last one it saw.
OWED_AFTER = (
    "EXPLAIN QUERY PLAN SELECT * FROM invoices WHERE customer_id = 'CUST-OLD'"
    " AND status IN ('issued', 'partially_paid') AND invoice_id > 'INV-A'"
    " ORDER BY invoice_id LIMIT 101"
)


def test_an_old_database_reads_a_customers_invoices_after_a_cursor_by_index(
    tmp_path: Path, issuer: TestIssuer
) -> None:
    """Without the index, a page of a customer's invoices read all the customer's
    invoices of the day (or all invoices after the cursor, every customer's)."""
    with sqlite3.connect(tmp_path / "billing.db") as conn:
        conn.executescript(OLD_SCHEMA)
        assert "invoices_by_customer" not in str(conn.execute(OWED_AFTER).fetchall())
    settings = load_settings("billing", data_dir=tmp_path)
    with service_client("billing", settings, issuer, "billing:read") as client:
        assert client.get("/billing/v1/invoices/INV-OLD").status_code == 200
    with sqlite3.connect(tmp_path / "billing.db") as conn:
        plan = str(conn.execute(OWED_AFTER).fetchall())
    assert "invoices_by_customer (customer_id=? AND invoice_id>?)" in plan, plan
