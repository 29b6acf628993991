"""The ERP's customer master: status, group, payment terms and ship-to addresses, changed
by PATCH; and customer-specific prices over the list price."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from shared.settings import Settings
from system_apis.erp.app import create_app
from tests.support.problems import assert_problem
from tests.support.tokens import TestIssuer


def usd(amount: int) -> dict[str, Any]:
    return {"amount_minor": amount, "currency": "USD"}


def ship_to(ship_to_id: str, region: str = "EU-WEST", country: str = "DE") -> dict[str, Any]:
    return {
        "ship_to_id": ship_to_id,
        "name": f"Dock {ship_to_id}",
        "address": {
            "line1": "Hafenstr. 1",
            "city": "Hamburg",
            "postal_code": "20457",
            "country": country,
        },
        "region": region,
    }


def customer(client: TestClient[Any], customer_id: str = "CUST-A", **fields: Any) -> dict[str, Any]:
    body = {"customer_id": customer_id, "name": "Acme", "credit_limit": usd(100_000)} | fields
    created = client.post("/erp/v1/customers", json=body)
    assert created.status_code == 201, created.text
    return dict(created.json())


def item(client: TestClient[Any], sku: str, price: int, currency: str = "USD") -> None:
    body = {"sku": sku, "name": sku, "unit_price": {"amount_minor": price, "currency": currency}}
    assert client.post("/erp/v1/items", json=body).status_code == 201


def test_a_customer_created_as_before_gets_the_defaults(client: TestClient[Any]) -> None:
    created = customer(client)
    assert created["status"] == "active"
    assert created["customer_group"] is None
    assert created["payment_terms"] == "net30"
    assert created["ship_tos"] == []
    assert created["updated_at"] == created["created_at"]
    assert client.get("/erp/v1/customers/CUST-A").json() == created


def test_the_master_fields_are_created_patched_and_read_back(client: TestClient[Any]) -> None:
    created = customer(
        client,
        customer_group="STRATEGIC",
        payment_terms="net60",
        ship_tos=[ship_to("HH"), ship_to("MUC", region="EU-SOUTH")],
    )
    assert [s["ship_to_id"] for s in created["ship_tos"]] == ["HH", "MUC"]
    assert created["ship_tos"][0]["address"]["line2"] is None

    patched = client.patch(
        "/erp/v1/customers/CUST-A",
        json={
            "name": "Acme GmbH",
            "credit_limit": usd(250_000),
            "payment_terms": "prepaid",
            "ship_tos": [ship_to("BER", region="EU-EAST")],
        },
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert (body["name"], body["credit_limit"], body["payment_terms"]) == (
        "Acme GmbH",
        usd(250_000),
        "prepaid",
    )
    # What the patch did not name keeps its value; ship-tos are replaced as a list.
    assert body["customer_group"] == "STRATEGIC"
    assert [(s["ship_to_id"], s["region"]) for s in body["ship_tos"]] == [("BER", "EU-EAST")]
    assert body["updated_at"] > created["updated_at"]
    assert client.get("/erp/v1/customers/CUST-A").json() == body

    # null clears the group; an empty patch changes nothing but the time.
    cleared = client.patch("/erp/v1/customers/CUST-A", json={"customer_group": None}).json()
    assert cleared["customer_group"] is None and cleared["name"] == "Acme GmbH"


def test_concurrent_patches_leave_one_whole_ship_to_list(client: TestClient[Any]) -> None:
    customer(client, ship_tos=[ship_to("OLD")])
    lists = [[ship_to(f"P{n}-A"), ship_to(f"P{n}-B")] for n in range(12)]

    def send(ship_tos: list[dict[str, Any]]) -> int:
        body = {"ship_tos": ship_tos}
        return client.patch("/erp/v1/customers/CUST-A", json=body).status_code

    with ThreadPoolExecutor(max_workers=6) as pool:
        assert set(pool.map(send, lists)) == {200}
    ids = [s["ship_to_id"] for s in client.get("/erp/v1/customers/CUST-A").json()["ship_tos"]]
    assert ids in [[s["ship_to_id"] for s in one] for one in lists]


def test_a_blocked_customer_reads_blocked_and_can_be_unblocked(client: TestClient[Any]) -> None:
    customer(client)
    blocked = client.patch("/erp/v1/customers/CUST-A", json={"status": "blocked"})
    assert blocked.status_code == 200 and blocked.json()["status"] == "blocked"
    assert client.get("/erp/v1/customers/CUST-A").json()["status"] == "blocked"
    again = client.patch("/erp/v1/customers/CUST-A", json={"status": "active"})
    assert again.json()["status"] == "active"
    assert_problem(client.patch("/erp/v1/customers/CUST-A", json={"status": "closed"}), 400)


@pytest.mark.parametrize(
    ("bad", "status", "slug"),
    [
        # Schema-valid, refused by the ERP's rules:
        ({"ship_tos": [ship_to("HH", country="XX")]}, 422, "unknown-country"),
        ({"ship_tos": [ship_to("HH"), ship_to("HH")]}, 422, "duplicate-ship-to"),
        # Outside the schema:
        ({"ship_tos": [ship_to("HH", country="de")]}, 400, "invalid-request"),
        ({"ship_tos": [ship_to("HH", region="")]}, 400, "invalid-request"),
        ({"ship_tos": [ship_to("HH", region="EU WEST")]}, 400, "invalid-request"),
        ({"ship_tos": [ship_to(f"S{n}") for n in range(51)]}, 400, "invalid-request"),
        ({"customer_group": "not a group"}, 400, "invalid-request"),
        ({"payment_terms": "net90"}, 400, "invalid-request"),
        ({"credit_limit": usd(-1)}, 400, "invalid-request"),
        ({"email": "a@example.com"}, 400, "invalid-request"),  # unknown field
    ],
)
def test_a_bad_patch_is_refused_and_changes_nothing(
    client: TestClient[Any], bad: dict[str, Any], status: int, slug: str
) -> None:
    before = customer(client, ship_tos=[ship_to("HH")], customer_group="STRATEGIC")
    patch = {"name": "Changed", "status": "blocked"} | bad
    assert_problem(client.patch("/erp/v1/customers/CUST-A", json=patch), status, slug)
    assert client.get("/erp/v1/customers/CUST-A").json() == before


def test_a_bad_ship_to_on_create_writes_no_customer(client: TestClient[Any]) -> None:
    body = {
        "customer_id": "CUST-A",
        "name": "Acme",
        "credit_limit": usd(1),
        "ship_tos": [ship_to("HH", country="ZZ")],
    }
    assert_problem(client.post("/erp/v1/customers", json=body), 422, "unknown-country")
    assert_problem(client.get("/erp/v1/customers/CUST-A"), 404, "customer-not-found")
    body["ship_tos"] = [ship_to("HH"), ship_to("HH")]
    assert_problem(client.post("/erp/v1/customers", json=body), 422, "duplicate-ship-to")
    assert_problem(client.get("/erp/v1/customers/CUST-A"), 404, "customer-not-found")


def test_the_credit_limit_currency_cannot_change(client: TestClient[Any]) -> None:
    before = customer(client)
    refused = client.patch(
        "/erp/v1/customers/CUST-A",
        json={"name": "Other", "credit_limit": {"amount_minor": 5, "currency": "EUR"}},
    )
    assert_problem(refused, 422, "currency-change")
    assert client.get("/erp/v1/customers/CUST-A").json() == before


def test_patching_an_unknown_customer_is_404(client: TestClient[Any]) -> None:
    assert_problem(
        client.patch("/erp/v1/customers/NOBODY", json={"name": "x"}), 404, "customer-not-found"
    )


def test_a_customer_price_beats_the_list_price_until_deleted(client: TestClient[Any]) -> None:
    customer(client)
    customer(client, "CUST-B")
    item(client, "A", 1000)
    item(client, "B", 500)

    def prices(customer_id: str, *skus: str) -> dict[str, tuple[int, str]]:
        response = client.get(
            f"/erp/v1/customers/{customer_id}/prices", params=[("sku", s) for s in skus]
        )
        assert response.status_code == 200, response.text
        assert response.json()["next_cursor"] is None
        return {
            p["sku"]: (p["unit_price"]["amount_minor"], p["source"])
            for p in response.json()["items"]
        }

    assert prices("CUST-A", "A", "B") == {"A": (1000, "list"), "B": (500, "list")}
    put = client.put("/erp/v1/customers/CUST-A/prices/A", json={"unit_price": usd(900)})
    assert put.status_code == 200, put.text
    assert put.json() == {"customer_id": "CUST-A", "sku": "A", "unit_price": usd(900)}
    # A second PUT replaces the price; it is CUST-A's alone; unknown skus are left out.
    assert (
        client.put("/erp/v1/customers/CUST-A/prices/A", json={"unit_price": usd(850)}).status_code
        == 200
    )
    assert prices("CUST-A", "A", "B", "NOPE") == {"A": (850, "customer"), "B": (500, "list")}
    assert prices("CUST-B", "A") == {"A": (1000, "list")}

    assert client.delete("/erp/v1/customers/CUST-A/prices/A").status_code == 204
    assert prices("CUST-A", "A") == {"A": (1000, "list")}
    assert client.delete("/erp/v1/customers/CUST-A/prices/A").status_code == 204  # idempotent


def test_customer_prices_refusals_change_nothing(client: TestClient[Any]) -> None:
    customer(client)
    item(client, "A", 1000)
    path = "/erp/v1/customers/CUST-A/prices"
    assert_problem(
        client.put(f"{path}/A", json={"unit_price": {"amount_minor": 1, "currency": "EUR"}}),
        422,
        "currency-mismatch",
    )
    assert_problem(client.put(f"{path}/NOPE", json={"unit_price": usd(1)}), 404, "item-not-found")
    assert_problem(
        client.put("/erp/v1/customers/NOBODY/prices/A", json={"unit_price": usd(1)}),
        404,
        "customer-not-found",
    )
    assert_problem(client.delete("/erp/v1/customers/NOBODY/prices/A"), 404, "customer-not-found")
    assert_problem(client.get("/erp/v1/customers/NOBODY/prices", params={"sku": "A"}), 404)
    assert_problem(client.get(path), 400)  # at least one sku
    assert_problem(client.get(path, params=[("sku", f"S{n}") for n in range(101)]), 400)
    listed = client.get(path, params={"sku": "A"}).json()["items"]
    assert listed == [{"sku": "A", "unit_price": usd(1000), "source": "list"}]


def test_customers_of_an_older_database_get_the_master_fields(
    settings: Settings, issuer: TestIssuer
) -> None:
    """A database of the previous version (customers without status, group, terms and
    updated_at; invoices and payments without their customer indexes) is upgraded at
    start."""
    token = issuer.token("erp:read erp:write", audience="erp")
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(settings=settings, key_source=issuer.key_source())) as client:
        client.headers.update(headers)
        created = customer(client)

    async def downgrade() -> None:
        engine = create_async_engine(settings.database_url)
        async with engine.begin() as conn:
            for index in ("invoices_by_customer", "payments_by_customer_unapplied"):
                await conn.execute(text(f"DROP INDEX {index}"))
            for column in ("status", "customer_group", "payment_terms", "updated_at"):
                await conn.execute(text(f"ALTER TABLE customers DROP COLUMN {column}"))
        await engine.dispose()

    asyncio.run(downgrade())
    with TestClient(create_app(settings=settings, key_source=issuer.key_source())) as client:
        client.headers.update(headers)
        read = client.get("/erp/v1/customers/CUST-A").json()
        assert read == created  # active, net30, no group; updated_at = created_at
        patched = client.patch("/erp/v1/customers/CUST-A", json={"status": "blocked"})
        assert patched.status_code == 200 and patched.json()["status"] == "blocked"
        assert client.get("/erp/v1/customers/CUST-A/credit").status_code == 200

    async def indexes() -> set[str]:
        engine = create_async_engine(settings.database_url)
        async with engine.connect() as conn:
            names = await conn.run_sync(
                lambda sync: {
                    str(index["name"])
                    for table in ("invoices", "payments")
                    for index in inspect(sync).get_indexes(table)
                }
            )
        await engine.dispose()
        return names

    # The credit exposure's reads of open invoices and unapplied payments stay indexed.
    assert {"invoices_by_customer", "payments_by_customer_unapplied"} <= asyncio.run(indexes())
