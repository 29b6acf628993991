"""The ERP's money under any sequence of shipments, invoices, credit notes and payments
(a Hypothesis state machine driving the app over HTTP): each step is answered as a model
predicts (refusals write nothing), and after every step, per customer, balance =
invoices - credit notes - payments applied (from the lists, against GET balance), and per
invoice line credited <= invoiced, per order and sku invoiced <= shipped."""

from __future__ import annotations

import itertools
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from litestar.testing import TestClient

from shared.settings import load_settings
from system_apis.erp.app import create_app
from tests.support.tokens import TestIssuer

CUSTOMERS = ("CUST-A", "CUST-B")
PRICES = {"A": 100, "B": 250}
TAX_BP = 1900  # billing's job; any per-line tax will do for the ERP


def usd(amount: int) -> dict[str, int | str]:
    return {"amount_minor": amount, "currency": "USD"}


@dataclass
class Line:
    sku: str
    quantity: int
    net: int
    tax: int
    credited_quantity: int = 0
    credited_net: int = 0
    credited_tax: int = 0


@dataclass
class Invoice:
    invoice_id: str
    customer_id: str
    lines: dict[str, Line]
    paid: int = 0
    credited: int = 0

    @property
    def total(self) -> int:
        return sum(x.net + x.tax for x in self.lines.values())

    @property
    def outstanding(self) -> int:
        return self.total - self.credited - self.paid


@dataclass
class Shipment:
    customer_id: str
    lines: dict[str, int]
    invoiced: bool = False


@dataclass
class Customer:
    unapplied: int = 0
    payments: list[str] = field(default_factory=list)


class MoneyMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.TemporaryDirectory(prefix="tally-money-")
        data_dir = Path(self.tmp.name)
        config = msgspec.structs.replace(
            load_settings("erp", data_dir=data_dir),
            database_url=f"sqlite+aiosqlite:///{data_dir / 'erp.db'}",
            bus_url=f"sqlite:///{data_dir / 'events.db'}",
        )
        issuer = TestIssuer()
        self.http = TestClient(create_app(config, key_source=issuer.key_source())).__enter__()
        token = issuer.token("erp:read erp:write", audience="erp")
        self.http.headers["Authorization"] = f"Bearer {token}"
        self.serial = itertools.count(1)
        self.shipments: dict[str, Shipment] = {}
        self.invoices: dict[str, Invoice] = {}
        self.customers = {c: Customer() for c in CUSTOMERS}
        for customer_id in CUSTOMERS:
            body = {"customer_id": customer_id, "name": customer_id, "credit_limit": usd(10**9)}
            assert self.http.post("/erp/v1/customers", json=body).status_code == 201
            order = {
                "customer_id": customer_id,
                "currency": "USD",
                "version": 1,
                "status": "open",
                "lines": [
                    {"sku": s, "quantity": 1000, "cancelled": 0, "unit_price_minor": p}
                    for s, p in PRICES.items()
                ],
            }
            booked = self.http.put(f"/erp/v1/sales-orders/ORD-{customer_id}", json=order)
            assert booked.status_code == 200, booked.text

    def teardown(self) -> None:
        self.http.__exit__(None, None, None)
        self.tmp.cleanup()

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self.http.post(path, json=body, headers={"Idempotency-Key": f"k{next(self.serial)}"})

    # -- rules ----------------------------------------------------------------------

    @rule(customer=st.sampled_from(CUSTOMERS), a=st.integers(0, 4), b=st.integers(0, 3))
    def ship(self, customer: str, a: int, b: int) -> None:
        """Posts a shipment's goods issue."""
        lines = {sku: n for sku, n in (("A", a), ("B", b)) if n}
        if not lines:
            return
        shipment_id = f"SHP-{next(self.serial)}"
        body = {
            "kind": "goods_issue",
            "reference": shipment_id,
            "warehouse_id": "W1",
            "lines": [{"sku": s, "quantity_delta": -n} for s, n in lines.items()],
        }
        assert self.post("/erp/v1/inventory/postings", body).status_code == 201
        self.shipments[shipment_id] = Shipment(customer, lines)

    @precondition(lambda self: any(not s.invoiced for s in self.shipments.values()))
    @rule(data=st.data(), over=st.booleans(), part=st.booleans(), taxed=st.booleans())
    def invoice(self, data: st.DataObject, over: bool, part: bool, taxed: bool) -> None:
        """Invoices a shipment: all of it, part of it, or (``over``) a unit more of a sku
        than it shipped, which the ERP refuses."""
        open_ids = sorted(i for i, s in self.shipments.items() if not s.invoiced)
        shipment_id = data.draw(st.sampled_from(open_ids))
        shipment = self.shipments[shipment_id]
        quantities = dict(shipment.lines)
        if part:
            quantities = {s: n - 1 for s, n in quantities.items() if n > 1} or quantities
        if over:
            sku = data.draw(st.sampled_from(sorted(quantities)))
            quantities[sku] = shipment.lines[sku] + 1
        lines = {
            sku: Line(sku, n, n * PRICES[sku], n * PRICES[sku] * TAX_BP // 10_000 if taxed else 0)
            for sku, n in quantities.items()
        }
        body = {
            "order_id": f"ORD-{shipment.customer_id}",
            "shipment_id": shipment_id,
            "customer_id": shipment.customer_id,
            "lines": [
                {
                    "sku": x.sku,
                    "quantity": x.quantity,
                    "unit_price": usd(PRICES[x.sku]),
                    "tax": usd(x.tax),
                }
                for x in lines.values()
            ],
        }
        answer = self.post("/erp/v1/invoices", body)
        if over:
            assert answer.status_code == 422, answer.text
            assert answer.json()["type"] == "/problems/over-billing"
            return
        assert answer.status_code == 201, answer.text
        shipment.invoiced = True
        invoice_id = answer.json()["invoice_id"]
        self.invoices[invoice_id] = Invoice(invoice_id, shipment.customer_id, lines)
        assert answer.json()["total"] == usd(self.invoices[invoice_id].total)
        again = self.post("/erp/v1/invoices", body)  # the same shipment under another key
        assert again.status_code == 409 and again.json()["type"] == "/problems/duplicate-invoice"

    @rule(customer=st.sampled_from(CUSTOMERS))
    def invoice_unposted(self, customer: str) -> None:
        body = {
            "order_id": f"ORD-{customer}",
            "shipment_id": f"SHP-NOT-POSTED-{next(self.serial)}",
            "customer_id": customer,
            "lines": [{"sku": "A", "quantity": 1, "unit_price": usd(100)}],
        }
        answer = self.post("/erp/v1/invoices", body)
        assert (
            answer.status_code == 409 and answer.json()["type"] == "/problems/shipment-not-posted"
        )

    @precondition(lambda self: bool(self.invoices))
    @rule(
        data=st.data(),
        units=st.integers(0, 3),
        share=st.integers(0, 100),
        too_big=st.sampled_from(["no", "no", "units", "net", "tax"]),
    )
    def credit(self, data: st.DataObject, units: int, share: int, too_big: str) -> None:
        """A credit note for one sku of an invoice: some units and some money within the
        line's room, or (``too_big``) one unit / minor unit over it."""
        invoice = self.invoices[data.draw(st.sampled_from(list(self.invoices)))]  # as issued
        line = invoice.lines[data.draw(st.sampled_from(sorted(invoice.lines)))]
        quantity = min(units, line.quantity - line.credited_quantity)
        net = (line.net - line.credited_net) * share // 100
        tax = (line.tax - line.credited_tax) * share // 100
        if too_big == "units":
            quantity = line.quantity - line.credited_quantity + 1
        elif too_big == "net":
            net = line.net - line.credited_net + 1
        elif too_big == "tax":
            tax = line.tax - line.credited_tax + 1
        body = {
            "invoice_id": invoice.invoice_id,
            "reason": "return",
            "reference": f"DSP-{next(self.serial)}",
            "lines": [{"sku": line.sku, "quantity": quantity, "amount": usd(net), "tax": usd(tax)}],
        }
        answer = self.post("/erp/v1/credit-notes", body)
        if too_big != "no":
            assert answer.status_code == 422 and answer.json()["type"] == "/problems/over-credit"
            return
        if quantity == net == tax == 0:
            assert answer.status_code == 422 and answer.json()["type"] == "/problems/empty-credit"
            return
        assert answer.status_code == 201, answer.text
        line.credited_quantity += quantity
        line.credited_net += net
        line.credited_tax += tax
        invoice.credited += net + tax
        excess = -invoice.outstanding
        if excess > 0:  # the payments' surplus becomes the customer's credit
            invoice.paid -= excess
            self.customers[invoice.customer_id].unapplied += excess

    @rule(
        data=st.data(),
        customer=st.sampled_from(CUSTOMERS),
        mode=st.sampled_from(["applied", "unapplied", "over"]),
        amount=st.integers(1, 3000),
    )
    def pay(self, data: st.DataObject, customer: str, mode: str, amount: int) -> None:
        """A payment naming an open invoice (within or, ``over``, beyond its
        outstanding), or naming none (oldest due first, then credit)."""
        state = self.customers[customer]
        # In the order issued (ids are not: uuid7s of one millisecond may sort either way).
        open_invoices = [
            i.invoice_id
            for i in self.invoices.values()
            if i.customer_id == customer and i.outstanding > 0
        ]
        if mode == "unapplied" or not open_invoices:
            answer = self.post("/erp/v1/payments", {"customer_id": customer, "amount": usd(amount)})
            assert answer.status_code == 201, answer.text
            left = amount
            for applied in answer.json()["applied"]:
                invoice = self.invoices[applied["invoice_id"]]
                take = applied["amount"]["amount_minor"]
                assert 0 < take <= invoice.outstanding
                invoice.paid += take
                left -= take
            open_left = sum(
                i.outstanding for i in self.invoices.values() if i.customer_id == customer
            )
            assert left == 0 or open_left == 0, (
                "a payment's rest is credit only when nothing is open"
            )
            state.unapplied += left
            return
        invoice = self.invoices[data.draw(st.sampled_from(open_invoices))]
        applied = invoice.outstanding + 1 if mode == "over" else min(amount, invoice.outstanding)
        body = {
            "customer_id": customer,
            "amount": usd(max(amount, applied)),
            "applications": [{"invoice_id": invoice.invoice_id, "amount": usd(applied)}],
        }
        answer = self.post("/erp/v1/payments", body)
        if mode == "over":
            assert (
                answer.status_code == 422 and answer.json()["type"] == "/problems/over-application"
            )
            return
        assert answer.status_code == 201, answer.text
        invoice.paid += applied
        state.unapplied += max(amount, applied) - applied

    # -- invariants ---------------------------------------------------------------------

    def listed(self, path: str, **params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            query = {**params, "limit": 500} | ({"cursor": cursor} if cursor else {})
            page = self.http.get(path, params=query).json()
            items += page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return items

    @invariant()
    def books_balance(self) -> None:
        for customer_id in CUSTOMERS:
            invoices = self.listed("/erp/v1/invoices", customer_id=customer_id)
            notes = self.listed("/erp/v1/credit-notes", customer_id=customer_id)
            payments = self.listed("/erp/v1/payments", customer_id=customer_id)
            invoiced = sum(i["total"]["amount_minor"] for i in invoices)
            credited = sum(c["total"]["amount_minor"] for c in notes)
            applied = sum(a["amount"]["amount_minor"] for p in payments for a in p["applied"])
            unapplied = sum(p["unapplied"]["amount_minor"] for p in payments)
            for p in payments:
                held = sum(a["amount"]["amount_minor"] for a in p["applied"])
                assert held + p["unapplied"]["amount_minor"] == p["amount"]["amount_minor"]
            balance = self.http.get(f"/erp/v1/customers/{customer_id}/balance").json()
            assert balance["balance"] == usd(invoiced - credited - applied), balance
            assert (balance["invoiced"], balance["credited"], balance["paid"]) == (
                usd(invoiced),
                usd(credited),
                usd(applied),
            )
            assert balance["unapplied_credit"] == usd(unapplied)
            assert balance["unapplied_credit"] == usd(self.customers[customer_id].unapplied)
            assert balance["net"]["amount_minor"] == invoiced - credited - applied - unapplied
            mine = [i for i in self.invoices.values() if i.customer_id == customer_id]
            assert balance["balance"] == usd(sum(i.outstanding for i in mine))
            assert balance["open_invoices"] == sum(1 for i in mine if i.outstanding > 0)
            # The credit exposure's unpaid invoices (what they still ask, less the credit
            # the customer holds): kept on the customer's row, moved by every step, and
            # always what the invoices say.
            exposure = self.http.get(f"/erp/v1/customers/{customer_id}/credit").json()
            owed = max(0, invoiced - credited - applied - unapplied)
            assert exposure["unpaid_invoices"] == usd(owed), exposure
            assert len(invoices) == len(mine)

    @invariant()
    def lines_within_what_was_shipped(self) -> None:
        invoiced: dict[tuple[str, str], int] = {}
        for found in self.listed("/erp/v1/invoices"):
            model = self.invoices[found["invoice_id"]]
            assert found["outstanding"] == usd(model.outstanding)
            assert found["paid"] == usd(model.paid) and found["credited"] == usd(model.credited)
            for line in found["lines"]:
                assert 0 <= line["credited_quantity"] <= line["quantity"]
                assert line["credited"]["amount_minor"] <= line["amount"]["amount_minor"]
                assert line["credited_tax"]["amount_minor"] <= line["tax"]["amount_minor"]
                key = (found["order_id"], line["sku"])
                invoiced[key] = invoiced.get(key, 0) + line["quantity"]
        shipped: dict[tuple[str, str], int] = {}
        for shipment in self.shipments.values():
            for sku, n in shipment.lines.items():
                key = (f"ORD-{shipment.customer_id}", sku)
                shipped[key] = shipped.get(key, 0) + n
        for key, n in invoiced.items():
            assert n <= shipped.get(key, 0), (key, n, shipped)


# Each example starts an app and makes a few hundred requests (about a second): a
# failure is reported as found, with its steps, not shrunk (shrinking would outlast the
# test's timeout).
MoneyMachine.TestCase.settings = settings(
    max_examples=25,
    stateful_step_count=30,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow],
)
TestMoneyMachine = MoneyMachine.TestCase
