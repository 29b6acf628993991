"""Sales orders as the ERP books them (whole versions, order-insensitive, idempotent) and
credit exposure = open orders not yet invoiced + unpaid invoices."""

from __future__ import annotations

import asyncio
import random
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from shared.settings import Settings
from system_apis.erp.app import create_app
from tests.erp.money import goods_issue
from tests.erp.test_customer_master import customer, item, usd
from tests.support.problems import assert_problem
from tests.support.service import post
from tests.support.tokens import TestIssuer


def order(
    version: int,
    lines: list[tuple[str, int, int, int]],
    *,
    status: str = "open",
    customer_id: str = "CUST-A",
    currency: str = "USD",
) -> dict[str, Any]:
    """``lines``: (sku, quantity, cancelled, unit price)."""
    return {
        "customer_id": customer_id,
        "currency": currency,
        "version": version,
        "status": status,
        "lines": [
            {"sku": sku, "quantity": q, "cancelled": c, "unit_price_minor": p}
            for sku, q, c, p in lines
        ],
    }


def put(client: TestClient[Any], order_id: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.put(f"/erp/v1/sales-orders/{order_id}", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def credit(client: TestClient[Any], customer_id: str = "CUST-A") -> dict[str, int]:
    response = client.get(f"/erp/v1/customers/{customer_id}/credit")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["customer_id"] == customer_id
    assert {m["currency"] for k, m in body.items() if k != "customer_id"} == {"USD"}
    return {k: m["amount_minor"] for k, m in body.items() if k != "customer_id"}


def invoice(
    client: TestClient[Any], order_id: str, shipment_id: str, lines: list[tuple[str, int, int]]
) -> dict[str, Any]:
    """Posts the shipment's goods issue, then invoices it (the ERP bills posted goods
    issues only)."""
    goods_issue(client, shipment_id, [(s, q) for s, q, _ in lines])
    body = {
        "order_id": order_id,
        "shipment_id": shipment_id,
        "customer_id": "CUST-A",
        "lines": [{"sku": s, "quantity": q, "unit_price": usd(p)} for s, q, p in lines],
    }
    created = post(client, "/erp/v1/invoices", body, key=shipment_id)
    assert created.status_code == 201, created.text
    return dict(created.json())


def test_a_sales_order_is_booked_with_its_value(client: TestClient[Any]) -> None:
    customer(client)
    booked = put(client, "SO-1", order(1, [("A", 3, 1, 1000), ("B", 2, 0, 250)]))
    assert booked["order_id"] == "SO-1" and booked["version"] == 1
    assert booked["value"] == usd(2 * 1000 + 2 * 250)
    assert booked["invoiced"] == usd(0)
    assert booked["open_value"] == usd(2500)
    assert booked["lines"][0] == {
        "sku": "A",
        "quantity": 3,
        "cancelled": 1,
        "unit_price_minor": 1000,
    }
    assert client.get("/erp/v1/sales-orders/SO-1").json() == booked


def test_versions_make_puts_idempotent_and_order_insensitive(client: TestClient[Any]) -> None:
    customer(client)
    v1 = order(1, [("A", 5, 0, 100)])
    v2 = order(2, [("A", 5, 2, 100)])
    first = put(client, "SO-1", v1)
    assert put(client, "SO-1", v1) == first  # a retry changes nothing
    second = put(client, "SO-1", v2)
    assert second["value"] == usd(300)
    # An older version arriving late, or another body at a stored version, changes nothing.
    assert put(client, "SO-1", v1) == second
    assert put(client, "SO-1", order(2, [("A", 9, 0, 100)], status="cancelled")) == second
    assert client.get("/erp/v1/sales-orders/SO-1").json() == second


def test_concurrent_versions_in_any_order_leave_the_newest(client: TestClient[Any]) -> None:
    customer(client)
    versions = list(range(1, 21))
    random.Random(16).shuffle(versions)

    def send(version: int) -> int:
        body = order(version, [("A", version, 0, 10)])
        return client.put("/erp/v1/sales-orders/SO-1", json=body).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert set(pool.map(send, versions)) == {200}
    stored = client.get("/erp/v1/sales-orders/SO-1").json()
    assert (stored["version"], stored["value"]) == (20, usd(200))
    assert [x["quantity"] for x in stored["lines"]] == [20]


@pytest.mark.parametrize(
    ("body", "status", "slug"),
    [
        (order(1, [("A", 1, 0, 1)], customer_id="NOBODY"), 422, "unknown-customer"),
        (order(1, [("A", 1, 0, 1)], currency="EUR"), 422, "currency-mismatch"),
        (order(1, [("A", 1, 2, 1)]), 422, "invalid-line"),  # cancelled > quantity
        (order(0, [("A", 1, 0, 1)]), 400, "invalid-request"),
        (order(1, []), 400, "invalid-request"),
        (order(1, [("A", 1, 0, 1)], status="shipped"), 400, "invalid-request"),
        (order(1, [("A", 1, 0, -1)]), 400, "invalid-request"),
        (order(1, [("A", 1_000_000_000, 0, 10**15)]), 422, "value-too-large"),
    ],
)
def test_a_refused_sales_order_books_nothing(
    client: TestClient[Any], body: dict[str, Any], status: int, slug: str
) -> None:
    customer(client)
    assert_problem(client.put("/erp/v1/sales-orders/SO-1", json=body), status, slug)
    assert_problem(client.get("/erp/v1/sales-orders/SO-1"), 404, "sales-order-not-found")
    assert credit(client)["open_orders"] == 0


def test_a_new_version_cannot_move_the_order_to_another_customer(client: TestClient[Any]) -> None:
    customer(client)
    customer(client, "CUST-B")
    booked = put(client, "SO-1", order(1, [("A", 1, 0, 100)]))
    moved = client.put(
        "/erp/v1/sales-orders/SO-1", json=order(2, [("A", 1, 0, 100)], customer_id="CUST-B")
    )
    assert_problem(moved, 422, "sales-order-customer-changed")
    assert client.get("/erp/v1/sales-orders/SO-1").json() == booked


def batch(client: TestClient[Any], *items: tuple[str, dict[str, Any]]) -> list[dict[str, Any]]:
    body = {"sales_orders": [{"order_id": order_id, **o} for order_id, o in items]}
    response = client.post("/erp/v1/sales-orders/batch", json=body)
    assert response.status_code == 200, response.text
    return list(response.json()["results"])


def test_a_batch_books_each_sales_order_as_its_put_would(client: TestClient[Any]) -> None:
    customer(client)
    customer(client, "CUST-B")
    older = put(client, "SO-OLD", order(3, [("A", 1, 0, 100)]))
    results = batch(
        client,
        ("SO-1", order(1, [("A", 2, 0, 100)])),
        ("SO-BAD", order(1, [("A", 1, 2, 100)])),  # cancels more than it holds
        ("SO-OLD", order(2, [("A", 9, 0, 100)])),  # older than stored: changes nothing
        ("SO-NOBODY", order(1, [("A", 1, 0, 1)], customer_id="NOBODY")),
        ("SO-2", order(1, [("A", 1, 0, 50)], customer_id="CUST-B")),
    )
    assert [r["order_id"] for r in results] == ["SO-1", "SO-BAD", "SO-OLD", "SO-NOBODY", "SO-2"]
    assert results[0]["sales_order"] == client.get("/erp/v1/sales-orders/SO-1").json()
    assert results[0]["sales_order"]["value"] == usd(200)
    assert results[1]["sales_order"] is None
    assert (results[1]["refusal"]["type"], results[1]["refusal"]["status"]) == (
        "/problems/invalid-line",
        422,
    )
    assert results[2]["sales_order"] == older
    assert results[3]["refusal"]["type"] == "/problems/unknown-customer"
    assert results[4]["sales_order"]["customer_id"] == "CUST-B"
    assert_problem(client.get("/erp/v1/sales-orders/SO-BAD"), 404, "sales-order-not-found")
    assert credit(client)["open_orders"] == 200 + 100
    # Sent again (a retry after a lost answer): the same answers, nothing booked twice.
    again = batch(client, ("SO-1", order(1, [("A", 2, 0, 100)])))
    assert again[0]["sales_order"] == results[0]["sales_order"]
    assert credit(client)["open_orders"] == 300


@pytest.mark.parametrize(
    "body",
    [
        {"sales_orders": []},
        {
            "sales_orders": [
                {"order_id": f"SO-{n}", **order(1, [("A", 1, 0, 1)])} for n in range(101)
            ]
        },
        {"sales_orders": [order(1, [("A", 1, 0, 1)])]},  # no order_id
        {"orders": []},
    ],
)
def test_a_malformed_batch_is_400_and_books_nothing(
    client: TestClient[Any], body: dict[str, Any]
) -> None:
    customer(client)
    assert_problem(client.post("/erp/v1/sales-orders/batch", json=body), 400, "invalid-request")
    assert credit(client)["open_orders"] == 0


def test_exposure_is_open_orders_not_invoiced_plus_unpaid_invoices(
    client: TestClient[Any],
) -> None:
    customer(client)  # credit limit 100,000
    customer(client, "CUST-B")
    assert credit(client) == {
        "credit_limit": 100_000,
        "open_orders": 0,
        "unpaid_invoices": 0,
        "exposure": 0,
        "available": 100_000,
    }
    put(client, "SO-1", order(1, [("A", 10, 0, 1000), ("B", 4, 0, 500)]))  # 12,000
    put(client, "SO-2", order(1, [("A", 1, 0, 3000)]))  # 3,000
    put(client, "SO-B", order(1, [("A", 1, 0, 7)], customer_id="CUST-B"))  # another's
    assert credit(client)["open_orders"] == 15_000

    # Shipping and invoicing part of SO-1 moves that part from open orders to invoices.
    issued = invoice(client, "SO-1", "SHP-1", [("A", 6, 1000)])
    assert issued["total"] == usd(6000)
    after = credit(client)
    assert (after["open_orders"], after["unpaid_invoices"]) == (9_000, 6_000)
    assert (after["exposure"], after["available"]) == (15_000, 85_000)
    so1 = client.get("/erp/v1/sales-orders/SO-1").json()
    assert (so1["invoiced"], so1["open_value"]) == (usd(6000), usd(6000))

    # Closed and cancelled orders are not open; an invoice stays unpaid (no payments yet).
    put(client, "SO-1", order(2, [("A", 10, 0, 1000), ("B", 4, 0, 500)], status="closed"))
    put(client, "SO-2", order(2, [("A", 1, 1, 3000)], status="cancelled"))
    assert credit(client) == {
        "credit_limit": 100_000,
        "open_orders": 0,
        "unpaid_invoices": 6_000,
        "exposure": 6_000,
        "available": 94_000,
    }
    assert credit(client, "CUST-B")["exposure"] == 7


def test_invoices_of_one_order_issued_at_once_leave_its_open_value_right(
    client: TestClient[Any],
) -> None:
    """Each invoice recomputes its order's open value; issued at the same moment, none
    may miss another's (on PostgreSQL they take the order's lock in turn)."""
    customer(client)
    put(client, "SO-1", order(1, [("A", 10, 0, 1000)]))  # 10,000
    shipments = [f"SHP-{n}" for n in range(6)]
    for shipment_id in shipments:
        goods_issue(client, shipment_id, [("A", 1)])

    def bill(shipment_id: str) -> int:
        body = {
            "order_id": "SO-1",
            "shipment_id": shipment_id,
            "customer_id": "CUST-A",
            "lines": [{"sku": "A", "quantity": 1, "unit_price": usd(1000)}],
        }
        return post(client, "/erp/v1/invoices", body, key=shipment_id).status_code

    with ThreadPoolExecutor(max_workers=6) as pool:
        assert set(pool.map(bill, shipments)) == {201}
    so1 = client.get("/erp/v1/sales-orders/SO-1").json()
    assert (so1["invoiced"], so1["open_value"]) == (usd(6000), usd(4000))
    after = credit(client)
    assert (after["open_orders"], after["unpaid_invoices"]) == (4000, 6000)


def test_invoicing_more_than_the_order_leaves_no_negative_open_value(
    client: TestClient[Any],
) -> None:
    customer(client, credit_limit=usd(1000))
    put(client, "SO-1", order(1, [("A", 1, 0, 800)]))
    # The warehouse shipped two (the invoice bills what the goods issue took).
    invoice(client, "SO-1", "SHP-1", [("A", 2, 800)])
    so1 = client.get("/erp/v1/sales-orders/SO-1").json()
    assert (so1["value"], so1["invoiced"], so1["open_value"]) == (usd(800), usd(1600), usd(0))
    # Over the limit: available goes negative (Money's shape, a signed amount).
    assert credit(client) == {
        "credit_limit": 1000,
        "open_orders": 0,
        "unpaid_invoices": 1600,
        "exposure": 1600,
        "available": -600,
    }


def test_unknown_customer_and_order_are_404(client: TestClient[Any]) -> None:
    assert_problem(client.get("/erp/v1/customers/NOBODY/credit"), 404, "customer-not-found")
    assert_problem(client.get("/erp/v1/sales-orders/NOPE"), 404, "sales-order-not-found")


def test_order_terms_answer_the_customer_its_prices_and_its_credit_in_one_read(
    client: TestClient[Any],
) -> None:
    """What the order process reads on every order equals the three reads it replaces."""
    customer(client, "CUST-T", customer_group="strategic")
    item(client, "SKU-LIST", 500)
    item(client, "SKU-OWN", 500)
    own = client.put("/erp/v1/customers/CUST-T/prices/SKU-OWN", json={"unit_price": usd(450)})
    assert own.status_code == 200, own.text
    put(client, "ORD-T1", order(1, [("SKU-LIST", 2, 0, 500)], customer_id="CUST-T"))
    params = [("sku", "SKU-OWN"), ("sku", "SKU-LIST"), ("sku", "NO-SUCH-SKU")]
    terms = client.get("/erp/v1/customers/CUST-T/order-terms", params=params)
    assert terms.status_code == 200, terms.text
    body = terms.json()
    assert body["customer"] == client.get("/erp/v1/customers/CUST-T").json()
    assert body["credit"] == client.get("/erp/v1/customers/CUST-T/credit").json()
    assert body["credit"]["open_orders"] == usd(1000)
    prices = client.get("/erp/v1/customers/CUST-T/prices", params=params).json()["items"]
    assert body["prices"] == prices
    assert [(p["sku"], p["source"]) for p in prices] == [
        ("SKU-LIST", "list"),
        ("SKU-OWN", "customer"),
    ]
    assert_problem(
        client.get("/erp/v1/customers/CUST-NOBODY/order-terms", params=params),
        404,
        "customer-not-found",
    )


def test_order_terms_in_a_batch_are_each_what_their_single_read_answers(
    client: TestClient[Any],
) -> None:
    """Decision 0061: the order process reads a turn's customers in one call. Each read
    is answered as its GET would be (an unknown customer refused alone, a customer read
    twice for more skus), and nothing is written."""
    customer(client, "CUST-BA")
    customer(client, "CUST-BB", credit_limit=usd(700))
    item(client, "SKU-BA", 500)
    item(client, "SKU-BB", 300)
    own = client.put("/erp/v1/customers/CUST-BB/prices/SKU-BA", json={"unit_price": usd(420)})
    assert own.status_code == 200, own.text
    put(client, "ORD-BB", order(1, [("SKU-BB", 2, 0, 300)], customer_id="CUST-BB"))
    reads = [
        ("CUST-BA", ["SKU-BA", "SKU-BB"]),
        ("CUST-NOBODY", ["SKU-BA"]),
        ("CUST-BB", ["SKU-BA"]),
        ("CUST-BB", ["SKU-BB", "NO-SUCH-SKU"]),
    ]
    answer = client.post(
        "/erp/v1/order-terms/batch",
        json={"reads": [{"customer_id": c, "skus": skus} for c, skus in reads]},
    )
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [r["customer_id"] for r in results] == [c for c, _ in reads]
    for (customer_id, skus), result in zip(reads, results, strict=True):
        single = client.get(
            f"/erp/v1/customers/{customer_id}/order-terms", params=[("sku", s) for s in skus]
        )
        if single.status_code == 404:
            assert "terms" not in result
            assert result["refusal"] == {
                "type": "/problems/customer-not-found",
                "status": 404,
                "detail": f"No customer {customer_id}.",
            }
        else:
            assert result == {"customer_id": customer_id, "terms": single.json()}
    assert results[3]["terms"]["credit"]["open_orders"] == usd(600)
    assert [p["source"] for p in results[2]["terms"]["prices"]] == ["customer"]

    for bad in ({"reads": []}, {"reads": [{"customer_id": "CUST-BA", "skus": []}]}):
        refused = client.post("/erp/v1/order-terms/batch", json=bad)
        assert refused.status_code == 400, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
    too_many = {"reads": [{"customer_id": "CUST-BA", "skus": ["SKU-BA"]}] * 101}
    assert client.post("/erp/v1/order-terms/batch", json=too_many).status_code == 400


def test_the_open_orders_figure_follows_every_version_and_invoice(
    client: TestClient[Any],
) -> None:
    """Decision 0054: the customer's open orders are kept on its row, moved with each
    order's open value. After each of a seeded run of new versions (quantities,
    cancellations, closing, cancelling, reopening) and invoices, the figure is the sum
    of its orders' open values as each order answers it; another customer's orders
    never move it."""
    customer(client, credit_limit=usd(10_000_000))
    customer(client, "CUST-B")
    rng = random.Random(54)
    versions = {f"SO-{n}": 0 for n in range(4)}
    shipped = 0
    put(client, "SO-B", order(1, [("A", 5, 0, 100)], customer_id="CUST-B"))
    for _ in range(40):
        order_id = rng.choice(sorted(versions))
        if versions[order_id] and rng.random() < 0.3:
            shipped += 1
            quantity = rng.randint(1, 3)
            invoice(client, order_id, f"SHP-{shipped}", [("A", quantity, 1000)])
        else:
            versions[order_id] += 1
            quantity = rng.randint(1, 20)
            lines = [("A", quantity, rng.randint(0, quantity), 1000), ("B", 2, 0, 250)]
            status = rng.choice(["open", "open", "open", "closed", "cancelled"])
            put(client, order_id, order(versions[order_id], lines, status=status))
        booked = [o for o, v in versions.items() if v]
        open_values = [
            client.get(f"/erp/v1/sales-orders/{o}").json()["open_value"]["amount_minor"]
            for o in booked
        ]
        assert credit(client)["open_orders"] == sum(open_values), (order_id, open_values)
    assert credit(client, "CUST-B")["open_orders"] == 500


def test_an_older_database_keeps_its_exposure_across_the_upgrade(
    settings: Settings, issuer: TestIssuer
) -> None:
    """A database from before each sales order kept its open value and each customer
    its outstanding: the upgrade computes them from the orders and invoices already
    booked, and the exposure reads the same."""
    token = issuer.token("erp:read erp:write", audience="erp")
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(settings=settings, key_source=issuer.key_source())) as client:
        client.headers.update(headers)
        customer(client)
        put(client, "SO-1", order(1, [("A", 10, 0, 1000), ("B", 4, 0, 500)]))  # 12,000
        put(client, "SO-2", order(1, [("A", 1, 0, 3000)]))  # 3,000
        put(client, "SO-3", order(1, [("A", 1, 0, 50)], status="closed"))  # not open
        invoice(client, "SO-1", "SHP-1", [("A", 6, 1000)])
        before = credit(client)
    assert (before["open_orders"], before["unpaid_invoices"]) == (9_000, 6_000)

    async def downgrade() -> None:
        engine = create_async_engine(settings.database_url)
        async with engine.begin() as conn:
            await conn.execute(text("DROP INDEX sales_orders_open_value"))
            await conn.execute(text("ALTER TABLE sales_orders DROP COLUMN open_value_minor"))
            await conn.execute(text("ALTER TABLE customers DROP COLUMN outstanding_minor"))
            await conn.execute(text("ALTER TABLE customers DROP COLUMN open_orders_minor"))
        await engine.dispose()

    asyncio.run(downgrade())
    with TestClient(create_app(settings=settings, key_source=issuer.key_source())) as client:
        client.headers.update(headers)
        assert credit(client) == before
        invoice(client, "SO-2", "SHP-2", [("A", 1, 3000)])  # and it keeps moving
        after = credit(client)
        assert (after["open_orders"], after["unpaid_invoices"]) == (6_000, 9_000)
