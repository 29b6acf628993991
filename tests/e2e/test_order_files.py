"""An EDI partner's purchase-order file as one call through the gateway of the real
platform (decision 0055): the partner's own OAuth client (Authlib, bound to its
customer) sends the file, each order is answered as its single call would be, and a
file sent twice places nothing twice."""

from __future__ import annotations

import uuid

import httpx

from tests.e2e.test_money_and_returns import partner_session
from tests.support.money import usd
from tests.support.platform import PlatformClient
from tests.support.polling import wait_until


def _stocked_customer(staff: httpx.Client) -> tuple[str, str]:
    tag = uuid.uuid4().hex[:8].upper()
    sku, customer_id = f"EDI-{tag}", f"CUST-EDI-{tag}"
    item = {"sku": sku, "name": "EDI item", "unit_price": usd(700)}
    assert staff.post("/erp/v1/items", json=item).status_code == 201
    body = {"customer_id": customer_id, "name": "EDI Co", "credit_limit": usd(10**9)}
    assert staff.post("/erp/v1/customers", json=body).status_code == 201
    receipt = {"warehouse_id": "WH-EAST", "lines": [{"sku": sku, "quantity": 10}]}
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    assert staff.post("/wms/v1/receipts", json=receipt, headers=headers).status_code == 201
    wait_until(
        lambda: staff.get(f"/availability/v1/items/{sku}").json()["available_to_promise"] == 10,
        what="the receipt in availability",
    )
    return sku, customer_id


def test_a_partners_order_file_through_the_gateway(platform: PlatformClient) -> None:
    with platform.client() as staff:
        sku, customer_id = _stocked_customer(staff)
        _, other_customer = _stocked_customer(staff)
    tag = uuid.uuid4().hex[:8]

    def order(customer: str, quantity: int) -> dict[str, object]:
        return {
            "customer_id": customer,
            "channel": "edi",
            "policy": "partial",
            "lines": [{"sku": sku, "quantity": quantity}],
        }

    file = {
        "orders": [
            {"idempotency_key": f"850-{tag}-1", "order": order(customer_id, 2)},
            {"idempotency_key": f"850-{tag}-2", "order": order(other_customer, 1)},
            {"idempotency_key": f"850-{tag}-3", "order": order(customer_id, 3)},
        ]
    }
    with partner_session(platform, customer_id) as partner:
        partner.fetch_token()
        sent = partner.post("/orders/v1/orders/batch", json=file)
        assert sent.status_code == 200, sent.text
        first, foreign, third = sent.json()["results"]
        assert first["status"] == third["status"] == 201
        assert foreign["refusal"]["status"] == 403  # not this partner's customer
        ids = [first["order"]["order_id"], third["order"]["order_id"]]

        again = partner.post("/orders/v1/orders/batch", json=file)
        assert again.status_code == 200, again.text
        replayed = again.json()["results"]
        assert [replayed[0]["order"]["order_id"], replayed[2]["order"]["order_id"]] == ids
        listed = partner.get("/orders/v1/orders", params={"customer_id": customer_id})
        assert sorted(o["order_id"] for o in listed.json()["items"]) == sorted(ids)
        atp = partner.get(f"/availability/v1/items/{sku}").json()["available_to_promise"]
        assert atp == 10 - 2 - 3
