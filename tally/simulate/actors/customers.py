"""Customers after the goods leave: they pay their invoices (in full, in part, too much,
late, or not at all, as the plan says) and return goods from shipped orders, which the
warehouse receives against the RMA and dispositions (restock, damaged or scrap)."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import random
from typing import Any

from tally.simulate.api import Party, json_of
from tally.simulate.journal import Journal
from tally.simulate.plan import Day, OrderIntent

SHIPPED = frozenset({"shipped", "delivered", "completed", "partially_shipped"})
DISPOSITIONS = ("restock", "restock", "damaged", "scrap")
AT_ONCE = 8
OWED = ["issued", "partially_paid"]
OWED_PAGE = 100  # the last page of what is owed is read again on each pass
REMITTANCE_LINES = 200  # invoices one payment may name: 500
IDS_PER_READ = 100  # ids one batch read of orders may name


class Customers:
    def __init__(self, day: Day, parties: dict[str, Party], staff: Party, journal: Journal) -> None:
        self.day = day
        self.parties = parties
        self.staff = staff
        self.journal = journal
        self.rng = random.Random(day.seed + 2)
        self.intents: dict[str, OrderIntent] = {}
        self.settled: set[str] = set()  # invoices this actor has decided on
        self.returning: set[str] = set()  # orders a return was asked for
        # Where each customer's owed invoices were last read up to: a clerk reads what
        # was issued since, not the whole ledger again (the late and unpaid ones stay
        # owed all day, a quarter of the day's invoices).
        self.owed_from: dict[str, str | None] = {}
        self.closing_read: set[str] = set()  # customers whose ledger was read in full at the close
        self.shipped_read = 0  # how many of the journal's shipped orders were looked at
        self.to_return: dict[str, dict[str, None]] = {}  # per customer, shipped, returns

    def _intent(self, order_id: str) -> OrderIntent | None:
        # Orders are added to the journal in the order they were placed: only the new.
        known = len(self.intents)
        if known < len(self.journal.orders):
            for index, placed in itertools.islice(self.journal.orders.items(), known, None):
                self.intents[placed] = self.day.intents[index]
        return self.intents.get(order_id)

    async def pass_once(self, closing: bool) -> None:
        """Pays what is due and returns what the plan returns; ``closing`` pays the late
        payers too (the end of the day)."""
        self._note_shipped()
        gate = asyncio.Semaphore(AT_ONCE)

        async def per_customer(customer_id: str) -> None:
            async with gate:
                await self._pay(customer_id, closing)
                await self._return(customer_id)

        await asyncio.gather(*(per_customer(c.customer_id) for c in self.day.customers))

    def _note_shipped(self) -> None:
        """The orders shipped since the last pass that the plan returns, per customer."""
        shipped = self.journal.shipped_orders
        for order_id in itertools.islice(shipped, self.shipped_read, None):
            intent = self._intent(order_id)
            if intent is not None and intent.returns and order_id not in self.returning:
                self.to_return.setdefault(intent.customer_id, {})[order_id] = None
        self.shipped_read = len(shipped)

    async def _pay(self, customer_id: str, closing: bool) -> None:
        """One remittance per pass for what falls due: each invoice paid as its order's
        plan says (in full, half, with 5.00 too much, at the end of the day, or never)."""
        party = self.parties[customer_id]
        if closing and customer_id not in self.closing_read:
            # The late payers' invoices are behind the mark, and an invoice recorded
            # after one issued later was passed by it: the whole ledger, once.
            self.closing_read.add(customer_id)
            self.owed_from[customer_id] = None
        invoices, self.owed_from[customer_id] = await party.pages_from(
            "/billing/v1/invoices",
            {"customer_id": customer_id, "status": OWED, "limit": OWED_PAGE},
            self.owed_from.get(customer_id),
        )
        applications: list[dict[str, Any]] = []
        kinds: list[str] = []
        extra = 0
        for invoice in invoices:
            invoice_id = invoice["invoice_id"]
            intent = self._intent(invoice["order_id"])
            if invoice_id in self.settled or intent is None:
                continue
            if intent.payment == "late" and not closing:
                continue
            self.settled.add(invoice_id)
            outstanding = int(invoice["outstanding"]["amount_minor"])
            if intent.payment == "none" or outstanding <= 0:
                continue
            applied = outstanding // 2 if intent.payment == "partial" else outstanding
            extra += 500 if intent.payment == "over" else 0
            applications.append(
                {"invoice_id": invoice_id, "amount": {"amount_minor": applied, "currency": "USD"}}
            )
            kinds.append(intent.payment)
        for start in range(0, len(applications), REMITTANCE_LINES):
            chunk = applications[start : start + REMITTANCE_LINES]
            await self._remit(
                party,
                customer_id,
                chunk,
                kinds[start : start + REMITTANCE_LINES],
                extra if start == 0 else 0,
            )

    async def _remit(
        self,
        party: Party,
        customer_id: str,
        applications: list[dict[str, Any]],
        kinds: list[str],
        extra: int,
    ) -> None:
        applied = sum(a["amount"]["amount_minor"] for a in applications)
        body = {
            "customer_id": customer_id,
            "amount": {"amount_minor": applied + extra, "currency": "USD"},
            "invoices": applications,
        }
        what = ",".join(f"{a['invoice_id']}={a['amount']['amount_minor']}" for a in applications)
        key = "sim-pay-" + hashlib.sha256(what.encode()).hexdigest()[:32]
        answer = await party.post("/billing/v1/payments", body, key=key)
        if answer.status_code == 201:
            self.journal.outcomes["remittances"] += 1
            for kind in kinds:
                self.journal.outcomes[f"payments_{kind}"] += 1
        elif answer.status_code == 422 and "over-application" in answer.text:
            # A credit note lowered what is owed since the customer looked: it looks
            # again on its next pass, as a remittance clerk would.
            for application in applications:
                self.settled.discard(application["invoice_id"])
            self.owed_from[customer_id] = None
            self.journal.outcomes["payments_refused_over_application"] += 1
        else:
            self.journal.failed("payment", answer.status_code, answer.text)

    async def _return(self, customer_id: str) -> None:
        party = self.parties[customer_id]
        pending = self.to_return.get(customer_id, {})
        wanted = list(pending)
        # The wanted orders read 100 per call (the orders API's batch read by ids): an
        # order the platform has not marked shipped yet is read again on the next pass.
        orders: list[dict[str, Any]] = []
        for start in range(0, len(wanted), IDS_PER_READ):
            orders += await party.pages(
                "/orders/v1/orders", {"order_id": wanted[start : start + IDS_PER_READ]}
            )
        for order in orders:
            order_id = order["order_id"]
            if order.get("status") not in SHIPPED:
                continue
            line = next(
                (x for x in order["lines"] if x["shipped"] - x.get("returned", 0) > 0), None
            )
            pending.pop(order_id, None)
            if line is None:
                continue
            self.returning.add(order_id)
            asked = await party.post(
                f"/orders/v1/orders/{order_id}/returns",
                {"lines": [{"sku": line["sku"], "quantity": 1}], "reason": "not as ordered"},
                key=f"sim-rma-{order_id}",
            )
            if asked.status_code != 201:
                self.journal.failed("return", asked.status_code, asked.text)
                continue
            self.journal.outcomes["returns_authorized"] += 1
            asyncio.get_running_loop().create_task(
                self._receive(party, json_of(asked), line["sku"])
            )

    async def _receive(self, party: Party, rma: dict[str, Any], sku: str) -> None:
        rma_id = rma["rma_id"]
        for _ in range(600):
            found = (await party.get(f"/orders/v1/returns/{rma_id}")).json()
            if found.get("wms_synced"):
                break
            await asyncio.sleep(0.2)
        received = await self.staff.post(
            "/wms/v1/returns",
            {"warehouse_id": "WH-EAST", "rma_id": rma_id, "lines": [{"sku": sku, "quantity": 1}]},
            key=f"sim-receive-{rma_id}",
        )
        if received.status_code != 201:
            self.journal.failed("return receipt", received.status_code, received.text)
            return
        return_id = json_of(received)["return_id"]
        disposition = self.rng.choice(DISPOSITIONS)
        inspected = await self.staff.post(
            f"/wms/v1/returns/{return_id}/disposition",
            {"lines": [{"sku": sku, "quantity": 1, "disposition": disposition}]},
            key=f"sim-disposition-{return_id}",
        )
        if inspected.status_code != 200:
            self.journal.failed("disposition", inspected.status_code, inspected.text)
            return
        self.journal.returned_orders.add(rma["order_id"])
        self.journal.outcomes[f"returns_{disposition}"] += 1
