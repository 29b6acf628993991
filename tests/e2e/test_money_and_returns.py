"""Money and returns as a partner lives them, through the gateway of the real platform
(every service its own process): the partner's own OAuth client (Authlib, bound to its
customer) orders, is invoiced with tax, pays in two remittances, asks for a return;
the warehouse receives it against the RMA and dispositions it; staff correct a price.
Every figure is read back from the platform's APIs."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from authlib.integrations.httpx_client import OAuth2Client

from tests.security.helpers import register_client
from tests.support.platform import PlatformClient
from tests.support.polling import wait_until

PRICE = 1000  # per unit, USD minor units
RATE_BP = 2000  # the default table's standard rate


def usd(amount_minor: int) -> dict[str, Any]:
    return {"amount_minor": amount_minor, "currency": "USD"}


def key() -> dict[str, str]:
    return {"Idempotency-Key": uuid.uuid4().hex}


@pytest.fixture
def customer(platform: PlatformClient) -> Iterator[tuple[str, str, httpx.Client]]:
    """A stocked sku, a customer, and staff's (the demo client's) API session."""
    tag = uuid.uuid4().hex[:8].upper()
    sku, customer_id = f"MNY-{tag}", f"CUST-MNY-{tag}"
    with platform.client() as staff:
        item = {"sku": sku, "name": "Money item", "unit_price": usd(PRICE)}
        assert staff.post("/erp/v1/items", json=item).status_code == 201
        body = {"customer_id": customer_id, "name": "Money Co", "credit_limit": usd(10**9)}
        assert staff.post("/erp/v1/customers", json=body).status_code == 201
        receipt = {"warehouse_id": "WH-EAST", "lines": [{"sku": sku, "quantity": 20}]}
        assert staff.post("/wms/v1/receipts", json=receipt, headers=key()).status_code == 201
        wait_until(lambda: atp(staff, sku) == 20, what="the receipt in availability")
        yield sku, customer_id, staff


def atp(api: httpx.Client, sku: str) -> int:
    return int(api.get(f"/availability/v1/items/{sku}").json()["available_to_promise"])


def partner_session(platform: PlatformClient, customer_id: str) -> OAuth2Client:
    scopes = "orders:read orders:write billing:read billing:write inventory:read"
    creds = register_client(platform, scopes, customer=customer_id)
    session = OAuth2Client(
        creds.client_id,
        creds.client_secret,
        scope=scopes,
        token_endpoint=f"{platform.gateway}/oauth/token",
        base_url=platform.gateway,
        timeout=30,
    )
    return session


def ship_all(staff: httpx.Client, order_id: str) -> None:
    (fo,) = staff.get("/wms/v1/fulfillment-orders", params={"order_id": order_id}).json()["items"]
    shipment = {
        "carrier": "UPS",
        "tracking_number": f"1Z{uuid.uuid4().hex[:10]}",
        "lines": [{"sku": x["sku"], "quantity": x["quantity"]} for x in fo["lines"]],
    }
    path = f"/wms/v1/fulfillment-orders/{fo['fulfillment_order_id']}/shipments"
    shipped = staff.post(path, json=shipment, headers=key())
    assert shipped.status_code == 201, shipped.text


def test_a_partner_is_invoiced_with_tax_pays_returns_and_is_credited_once(
    platform: PlatformClient, customer: tuple[str, str, httpx.Client]
) -> None:
    sku, customer_id, staff = customer
    with partner_session(platform, customer_id) as partner:
        partner.fetch_token()
        order = {
            "customer_id": customer_id,
            "channel": "b2b_portal",
            "lines": [{"sku": sku, "quantity": 5}],
        }
        placed = partner.post("/orders/v1/orders", json=order, headers=key())
        assert placed.status_code == 201, placed.text
        order_id = placed.json()["order_id"]
        wait_until(
            lambda: partner.get(f"/orders/v1/orders/{order_id}").json()["releases_pending"] == 0,
            what="the release",
        )
        ship_all(staff, order_id)

        def invoices() -> list[Any]:
            found = partner.get("/billing/v1/invoices", params={"order_id": order_id})
            items: list[Any] = found.json()["items"]
            return items

        (invoice,) = wait_until(invoices, timeout=60, what="the invoice")
        invoice_id = invoice["invoice_id"]
        net, tax = 5 * PRICE, 5 * PRICE * RATE_BP // 10_000
        assert (invoice["subtotal"], invoice["tax"], invoice["total"]) == (
            usd(net),
            usd(tax),
            usd(net + tax),
        )
        assert invoice["status"] == "issued"
        assert invoice["due_date"] is not None

        # Two remittances: one names the invoice, the second is applied to the oldest open one.
        first = partner.post(
            "/billing/v1/payments",
            json={
                "customer_id": customer_id,
                "amount": usd(2000),
                "invoices": [{"invoice_id": invoice_id, "amount": usd(2000)}],
            },
            headers=key(),
        )
        assert first.status_code == 201, first.text
        assert (
            partner.get(f"/billing/v1/invoices/{invoice_id}").json()["status"] == "partially_paid"
        )
        refused = partner.post(
            "/billing/v1/payments",
            json={"customer_id": customer_id, "amount": {"amount_minor": 100, "currency": "EUR"}},
            headers=key(),
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["type"].endswith("/currency-mismatch")
        rest = partner.post(
            "/billing/v1/payments",
            json={"customer_id": customer_id, "amount": usd(net + tax - 2000)},
            headers=key(),
        )
        assert rest.status_code == 201, rest.text
        paid = partner.get(f"/billing/v1/invoices/{invoice_id}").json()
        assert (paid["status"], paid["outstanding"]) == ("paid", usd(0))

        # A return of 3: a second RMA for 3 more is refused (5 shipped, 3 already returned).
        rma = partner.post(
            f"/orders/v1/orders/{order_id}/returns",
            json={"lines": [{"sku": sku, "quantity": 3}], "reason": "over-ordered"},
            headers=key(),
        )
        assert rma.status_code == 201, rma.text
        rma_id = rma.json()["rma_id"]
        more = partner.post(
            f"/orders/v1/orders/{order_id}/returns",
            json={"lines": [{"sku": sku, "quantity": 3}]},
            headers=key(),
        )
        assert more.status_code == 409, more.text
        assert more.json()["type"].endswith("/return-exceeds-shipped")
        wait_until(
            lambda: partner.get(f"/orders/v1/returns/{rma_id}").json()["wms_synced"],
            what="the RMA at the WMS",
        )

        # The warehouse receives 3 against the RMA (a 4th would be refused), restocks one,
        # scraps one (customer misuse: not credited), holds one in quality control.
        over = staff.post(
            "/wms/v1/returns",
            json={
                "warehouse_id": "WH-EAST",
                "rma_id": rma_id,
                "lines": [{"sku": sku, "quantity": 4}],
            },
            headers=key(),
        )
        assert over.status_code == 409, over.text
        received = staff.post(
            "/wms/v1/returns",
            json={
                "warehouse_id": "WH-EAST",
                "rma_id": rma_id,
                "lines": [{"sku": sku, "quantity": 3}],
            },
            headers=key(),
        )
        assert received.status_code == 201, received.text
        return_id = received.json()["return_id"]
        before = atp(staff, sku)
        inspected = staff.post(
            f"/wms/v1/returns/{return_id}/disposition",
            json={
                "lines": [
                    {"sku": sku, "quantity": 1, "disposition": "restock"},
                    {"sku": sku, "quantity": 1, "disposition": "scrap"},
                    {"sku": sku, "quantity": 1, "disposition": "quality_control"},
                ]
            },
            headers=key(),
        )
        assert inspected.status_code == 200, inspected.text
        wait_until(lambda: atp(staff, sku) == before + 1, what="the restocked unit sellable")

        def notes() -> list[Any]:
            found = partner.get("/billing/v1/credit-notes", params={"invoice_id": invoice_id})
            items: list[Any] = found.json()["items"]
            return items

        unit = {
            "sku": sku,
            "quantity": 1,
            "amount": usd(PRICE),
            "tax": usd(PRICE * RATE_BP // 10_000),
        }
        (note,) = wait_until(notes, timeout=60, what="the return's credit note")
        assert note["lines"] == [unit]
        assert atp(staff, sku) == before + 1  # the held unit is not sellable

        released = staff.post(
            f"/wms/v1/returns/{return_id}/release",
            json={"lines": [{"sku": sku, "quantity": 1, "disposition": "restock"}]},
            headers=key(),
        )
        assert released.status_code == 200, released.text
        wait_until(lambda: len(notes()) == 2, timeout=60, what="the released unit's credit note")
        wait_until(lambda: atp(staff, sku) == before + 2, what="the released unit sellable")
        wait_until(
            lambda: partner.get(f"/orders/v1/returns/{rma_id}").json()["status"] == "closed",
            what="the RMA closed",
        )
        line = partner.get(f"/orders/v1/orders/{order_id}").json()["lines"][0]
        assert (line["shipped"], line["returned"]) == (5, 3)

        # Staff correct the price of the 3 units still billed: 100 less each, plus its tax.
        correction = {
            "lines": [{"sku": sku, "unit_price": usd(PRICE - 100)}],
            "reason": "promo missed",
        }
        path = f"/billing/v1/invoices/{invoice_id}/adjustments"
        assert partner.post(path, json=correction, headers=key()).status_code == 403
        corrected = staff.post(path, json=correction, headers=key())
        assert corrected.status_code == 201, corrected.text
        again = staff.post(path, json=correction, headers=key())
        assert again.json()["credit_note_id"] == corrected.json()["credit_note_id"]
        assert corrected.json()["total"] == usd(3 * 100 + 3 * 100 * RATE_BP // 10_000)
        assert len(notes()) == 3

        # The invoice was paid in full: every credit is the customer's unapplied credit.
        credits = (
            2 * (PRICE + PRICE * RATE_BP // 10_000) + corrected.json()["total"]["amount_minor"]
        )
        balance = staff.get(f"/erp/v1/customers/{customer_id}/balance").json()
        assert (balance["balance"], balance["unapplied_credit"]) == (usd(0), usd(credits))
        statement = partner.get(f"/billing/v1/customers/{customer_id}/statement").json()
        assert statement["balance"] == usd(0)
        assert statement["unapplied_credit"] == usd(credits)
        assert [e["kind"] for e in statement["entries"]].count("credit_note") == 3
