"""One real order travels from a token to an invoice through every tier: separate
processes, real HTTP, real events."""

from __future__ import annotations

import uuid

import httpx

from tests.support.platform import PlatformClient
from tests.support.polling import eventually

PRICE = 1999


def _setup_stock(api: httpx.Client, sku: str, customer: str, east: int, west: int) -> None:
    item = {
        "sku": sku,
        "name": f"Item {sku}",
        "unit_price": {"amount_minor": PRICE, "currency": "USD"},
    }
    assert api.post("/erp/v1/items", json=item).status_code == 201
    body = {
        "customer_id": customer,
        "name": "E2E",
        "credit_limit": {"amount_minor": 10**9, "currency": "USD"},
    }
    assert api.post("/erp/v1/customers", json=body).status_code == 201
    for warehouse, quantity in (("WH-EAST", east), ("WH-WEST", west)):
        if not quantity:
            continue
        receipt = {"warehouse_id": warehouse, "lines": [{"sku": sku, "quantity": quantity}]}
        response = api.post(
            "/wms/v1/receipts", json=receipt, headers={"Idempotency-Key": f"rcv-{sku}-{warehouse}"}
        )
        assert response.status_code == 201, response.text


def _atp(api: httpx.Client, sku: str) -> int:
    return int(api.get(f"/availability/v1/items/{sku}").json()["available_to_promise"])


def test_order_travels_from_token_to_invoice(platform: PlatformClient) -> None:
    sku, customer = f"E2E-{uuid.uuid4().hex[:8]}", f"CUST-{uuid.uuid4().hex[:8]}"
    with platform.client() as api:
        _setup_stock(api, sku, customer, east=6, west=4)
        assert eventually(lambda: _atp(api, sku) == 10), "receipts never reached availability"

        order_body = {
            "customer_id": customer,
            "channel": "b2b_portal",
            "lines": [{"sku": sku, "quantity": 3}],
        }
        placed = api.post(
            "/orders/v1/orders", json=order_body, headers={"Idempotency-Key": "e2e-order-1"}
        )
        assert placed.status_code == 201, placed.text
        order = placed.json()
        order_id = order["order_id"]
        # Accepted and allocated at once; released to the warehouse by the release queue.
        assert order["status"] in ("accepted", "released")
        assert order["lines"][0]["allocated"] == 3
        assert _atp(api, sku) == 7

        def released() -> dict | None:
            found = api.get(f"/orders/v1/orders/{order_id}").json()
            return found if found["status"] == "released" else None

        order = eventually(released)
        assert order, "the order never reached the warehouse"
        assert order["lines"][0]["released"] == 3

        fulfillment = api.get("/wms/v1/fulfillment-orders", params={"order_id": order_id}).json()[
            "items"
        ]
        assert sum(line["quantity"] for fo in fulfillment for line in fo["lines"]) == 3
        for fo in fulfillment:
            shipment = {
                "carrier": "UPS",
                "tracking_number": f"1Z{fo['fulfillment_order_id'][-8:]}",
                "lines": [
                    {"sku": line["sku"], "quantity": line["quantity"]} for line in fo["lines"]
                ],
            }
            shipped = api.post(
                f"/wms/v1/fulfillment-orders/{fo['fulfillment_order_id']}/shipments",
                json=shipment,
                headers={"Idempotency-Key": f"ship-{fo['fulfillment_order_id']}"},
            )
            assert shipped.status_code == 201, shipped.text

        final = eventually(
            lambda: (
                (o := api.get(f"/orders/v1/orders/{order_id}").json())["status"] == "shipped" and o
            )
        )
        assert final, "the order never reached shipped"
        assert final["lines"][0]["shipped"] == 3
        assert {s["carrier"] for s in final["shipments"]} == {"UPS"}

        def invoices() -> list:
            return api.get("/billing/v1/invoices", params={"order_id": order_id}).json()["items"]

        found = eventually(lambda: len(invoices()) == len(fulfillment) and invoices())
        assert found, "no invoice was issued"
        # Net of tax (the default rate table taxes it: decision 0034).
        assert sum(i["subtotal"]["amount_minor"] for i in found) == 3 * PRICE
        assert all(i["total"]["currency"] == "USD" for i in found)
        assert all(
            i["total"]["amount_minor"] == i["subtotal"]["amount_minor"] + i["tax"]["amount_minor"]
            for i in found
        )
        # Physical stock left the building; nothing stays allocated.
        assert eventually(lambda: _atp(api, sku) == 7)
        position = api.get(f"/availability/v1/items/{sku}").json()
        assert sum(loc["on_hand"] for loc in position["locations"]) == 7
        assert sum(loc["allocated"] for loc in position["locations"]) == 0

        query = """query($id: ID!) { order(id: $id) { id status lines { sku quantity }
            shipments { carrier trackingNumber } invoices { id total { amountMinor currency } } } }"""
        graph = api.post("/graphql", json={"query": query, "variables": {"id": order_id}})
        assert graph.status_code == 200, graph.text
        data = graph.json()["data"]["order"]
        assert data["status"] == "shipped"
        assert data["lines"] == [{"sku": sku, "quantity": 3}]
        assert data["shipments"][0]["carrier"] == "UPS"
        assert sum(i["total"]["amountMinor"] for i in data["invoices"]) == sum(
            i["total"]["amount_minor"] for i in found
        )
        (availability,) = api.post(
            "/graphql",
            json={
                "query": "query($s: [ID!]!) { availability(skus: $s) { sku availableToPromise asOf } }",
                "variables": {"s": [sku]},
            },
        ).json()["data"]["availability"]
        assert availability["availableToPromise"] == 7


def test_replayed_order_returns_the_same_order_and_allocates_nothing_more(
    platform: PlatformClient,
) -> None:
    sku, customer = f"E2E-{uuid.uuid4().hex[:8]}", f"CUST-{uuid.uuid4().hex[:8]}"
    with platform.client() as api:
        _setup_stock(api, sku, customer, east=5, west=0)
        assert eventually(lambda: _atp(api, sku) == 5)
        body = {
            "customer_id": customer,
            "channel": "ecommerce",
            "lines": [{"sku": sku, "quantity": 2}],
        }
        key = {"Idempotency-Key": f"replay-{sku}"}
        first = api.post("/orders/v1/orders", json=body, headers=key)
        second = api.post("/orders/v1/orders", json=body, headers=key)
        assert first.status_code == second.status_code == 201
        assert second.headers.get("idempotent-replayed") == "true"
        assert second.json()["order_id"] == first.json()["order_id"]
        assert _atp(api, sku) == 3
        other = api.post(
            "/orders/v1/orders", json={**body, "lines": [{"sku": sku, "quantity": 1}]}, headers=key
        )
        assert other.status_code == 422
        assert other.headers["content-type"].startswith("application/problem+json")
        assert _atp(api, sku) == 3


def test_bad_orders_are_refused_and_write_nothing(platform: PlatformClient) -> None:
    sku, customer = f"E2E-{uuid.uuid4().hex[:8]}", f"CUST-{uuid.uuid4().hex[:8]}"
    with platform.client() as api:
        _setup_stock(api, sku, customer, east=2, west=0)
        assert eventually(lambda: _atp(api, sku) == 2)
        cases = [
            (
                {"customer_id": customer, "channel": "edi", "lines": [{"sku": sku, "quantity": 5}]},
                409,
                "/problems/insufficient-stock",
            ),
            (
                {
                    "customer_id": customer,
                    "channel": "edi",
                    "lines": [{"sku": "NO-SUCH-SKU", "quantity": 1}],
                },
                422,
                "/problems/unknown-sku",
            ),
            (
                {
                    "customer_id": "NO-SUCH-CUSTOMER",
                    "channel": "edi",
                    "lines": [{"sku": sku, "quantity": 1}],
                },
                422,
                "/problems/unknown-customer",
            ),
            (
                {"customer_id": customer, "channel": "edi", "lines": [{"sku": sku, "quantity": 0}]},
                400,
                "/problems/invalid-request",
            ),
        ]
        for n, (body, status, problem) in enumerate(cases):
            response = api.post(
                "/orders/v1/orders", json=body, headers={"Idempotency-Key": f"bad-{sku}-{n}"}
            )
            assert response.status_code == status, response.text
            assert response.headers["content-type"].startswith("application/problem+json")
            assert response.json()["type"] == problem
            assert response.json()["correlation_id"]
        assert _atp(api, sku) == 2
        listed = api.get("/orders/v1/orders", params={"customer_id": customer}).json()["items"]
        assert listed == []
