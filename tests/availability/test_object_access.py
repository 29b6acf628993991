"""Whose allocations and holds a caller may touch (decisions 0014 and 0021), on SQLite
and PostgreSQL: a client bound to a customer allocates and holds for that customer,
and reads, releases and converts only what is its customer's; anything else answers
what an unknown id answers and changes nothing. Administration needs
``inventory:admin``, which a bound client never holds."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from process_apis.availability.app import create_app
from shared.settings import Settings
from tests.availability.helpers import count, item, ledger_drift, movements, order
from tests.availability.test_fast_path import PATH, Framework, comparable
from tests.support.tokens import TestIssuer

PARTNER = "inventory:read inventory:write"


def bound(issuer: TestIssuer, customer: str, scopes: str = PARTNER) -> dict[str, str]:
    token = issuer.token(
        scopes, audience="availability", client_id=f"partner-{customer}", customer_id=customer
    )
    return {"Authorization": f"Bearer {token}"}


def as_unknown(problem: dict[str, Any], real_id: str, unknown_id: str) -> dict[str, Any]:
    """The problem with the id it names swapped, less the per-request correlation id."""
    view = {k: v for k, v in problem.items() if k != "correlation_id"}
    return {k: v.replace(real_id, unknown_id) if isinstance(v, str) else v for k, v in view.items()}


def books(client: TestClient[Any], sku: str) -> tuple[list[Any], list[dict[str, Any]]]:
    """The item's positions and its ledger, as staff sees them."""
    return item(client, sku)["locations"], movements(client, sku)


def hold_as(
    client: TestClient[Any], headers: dict[str, str], key: str | None = None, **extra: Any
) -> Any:
    body = {"channel": "web", "lines": [{"sku": "A", "quantity": 1}], "ttl_seconds": 600}
    return client.post(
        "/availability/v1/holds",
        json=body | extra,
        headers={**headers, "Idempotency-Key": key or f"hold-{extra.get('hold_id', 'x')}"},
    )


def allocate_as(
    client: TestClient[Any], headers: dict[str, str], order_id: str, quantity: int, **extra: Any
) -> Any:
    return client.post(
        "/availability/v1/allocations",
        json={
            "order_id": order_id,
            "channel": "b2b",
            "lines": [{"sku": "A", "quantity": quantity}],
            **extra,
        },
        headers={**headers, "Idempotency-Key": f"alloc-{order_id}"},
    )


def test_a_bound_caller_allocates_for_its_own_customer_only(
    client: TestClient[Any], settings: Settings, issuer: TestIssuer
) -> None:
    count(client, "A", "WH1", 10)
    a = bound(issuer, "CUST-A")

    made = allocate_as(client, a, "SO-A1", 2)
    named = allocate_as(client, a, "SO-A2", 1, customer_id="CUST-A")
    assert made.status_code == named.status_code == 201, (made.text, named.text)
    assert made.json()["customer_id"] == named.json()["customer_id"] == "CUST-A"
    assert client.get("/availability/v1/allocations/SO-A1").json()["customer_id"] == "CUST-A"

    before = books(client, "A")
    refused = allocate_as(client, a, "SO-A3", 1, customer_id="CUST-B")
    assert refused.status_code == 403
    assert refused.json()["type"] == "/problems/customer-not-permitted"
    assert books(client, "A") == before
    assert client.get("/availability/v1/allocations/SO-A3").status_code == 404
    # Staff (the order service) names the order's customer.
    staff = order(client, "SO-B1", [("A", 1)], customer_id="CUST-B")
    assert staff.status_code == 201 and staff.json()["customer_id"] == "CUST-B"
    assert ledger_drift(settings) == {}


def test_another_customers_allocation_is_an_unknown_one_and_stays_as_it_is(
    client: TestClient[Any], settings: Settings, issuer: TestIssuer
) -> None:
    count(client, "A", "WH1", 10)
    a, b = bound(issuer, "CUST-A"), bound(issuer, "CUST-B")
    mine = allocate_as(client, a, "SO-A1", 4)
    assert mine.status_code == 201, mine.text
    assert order(client, "SO-STAFF", [("A", 1)]).status_code == 201  # nobody's
    before = books(client, "A")

    unknown_read = client.get("/availability/v1/allocations/SO-NONE", headers=b)
    unknown_release = client.post("/availability/v1/allocations/SO-NONE/release", headers=b)
    assert unknown_read.status_code == unknown_release.status_code == 404
    for target in ("SO-A1", "SO-STAFF"):
        for response in (
            client.get(f"/availability/v1/allocations/{target}", headers=b),
            client.post(f"/availability/v1/allocations/{target}/release", headers=b),
        ):
            assert response.status_code == 404, response.text
            assert response.headers["content-type"] == "application/problem+json"
        read = client.get(f"/availability/v1/allocations/{target}", headers=b).json()
        released = client.post(f"/availability/v1/allocations/{target}/release", headers=b)
        assert as_unknown(read, target, "SO-NONE") == as_unknown(
            unknown_read.json(), "SO-NONE", "SO-NONE"
        )
        assert as_unknown(released.json(), target, "SO-NONE") == as_unknown(
            unknown_release.json(), "SO-NONE", "SO-NONE"
        )
    assert books(client, "A") == before  # no position, no ledger row moved
    assert item(client, "A")["available_to_promise"] == 5
    assert client.get("/availability/v1/allocations/SO-A1").json()["status"] == "allocated"

    assert client.get("/availability/v1/allocations/SO-A1", headers=a).json() == mine.json()
    gone = client.post("/availability/v1/allocations/SO-A1/release", headers=a)
    assert gone.status_code == 200 and gone.json()["status"] == "released"
    assert item(client, "A")["available_to_promise"] == 9
    assert ledger_drift(settings) == {}


def test_another_customers_hold_is_an_unknown_one_and_stays_as_it_is(
    client: TestClient[Any], settings: Settings, issuer: TestIssuer
) -> None:
    count(client, "A", "WH1", 10)
    a, b = bound(issuer, "CUST-A"), bound(issuer, "CUST-B")
    cart = hold_as(client, a, hold_id="CART-A", lines=[{"sku": "A", "quantity": 3}])
    assert cart.status_code == 201, cart.text
    assert cart.json()["customer_id"] == "CUST-A"
    before = books(client, "A")

    def attempts(hold_id: str) -> list[Any]:
        return [
            client.get(f"/availability/v1/holds/{hold_id}", headers=b),
            client.post(f"/availability/v1/holds/{hold_id}/release", headers=b),
            client.delete(f"/availability/v1/holds/{hold_id}", headers=b),
            client.post(
                f"/availability/v1/holds/{hold_id}/convert",
                json={"order_id": "SO-B1"},
                headers={**b, "Idempotency-Key": f"convert-{hold_id}"},
            ),
        ]

    for theirs, unknown in zip(attempts("CART-A"), attempts("CART-NONE"), strict=True):
        assert theirs.status_code == unknown.status_code == 404, theirs.text
        assert as_unknown(theirs.json(), "CART-A", "CART-NONE") == as_unknown(
            unknown.json(), "CART-NONE", "CART-NONE"
        )
    assert books(client, "A") == before
    assert client.get("/availability/v1/holds/CART-A").json()["status"] == "active"
    assert client.get("/availability/v1/allocations/SO-B1").status_code == 404

    other = hold_as(client, b, key="cart-b", customer_id="CUST-A")
    assert other.status_code == 403
    assert other.json()["type"] == "/problems/customer-not-permitted"
    assert books(client, "A") == before

    converted = client.post(
        "/availability/v1/holds/CART-A/convert",
        json={"order_id": "SO-A1"},
        headers={**a, "Idempotency-Key": "convert-a"},
    )
    assert converted.status_code == 201, converted.text
    assert converted.json()["customer_id"] == "CUST-A"
    assert client.get("/availability/v1/allocations/SO-A1", headers=a).status_code == 200
    assert client.get("/availability/v1/allocations/SO-A1", headers=b).status_code == 404
    assert ledger_drift(settings) == {}


def test_an_idempotency_key_is_the_callers_own(
    client: TestClient[Any], settings: Settings, issuer: TestIssuer
) -> None:
    count(client, "A", "WH1", 10)
    a, b = bound(issuer, "CUST-A"), bound(issuer, "CUST-B")
    first = allocate_as(client, a, "SO-A1", 2)
    assert first.status_code == 201

    # B sends A's key with A's body: not A's answer replayed, its own request.
    again = allocate_as(client, b, "SO-A1", 2)
    assert again.status_code == 409
    assert again.json()["type"] == "/problems/duplicate-allocation"
    assert "idempotent-replayed" not in again.headers
    replayed = allocate_as(client, a, "SO-A1", 2)
    assert replayed.headers["idempotent-replayed"] == "true"
    assert replayed.json() == first.json()

    held_a = hold_as(client, a, key="cart-key")
    held_b = hold_as(client, b, key="cart-key")
    assert held_a.status_code == held_b.status_code == 201
    assert held_a.json()["hold_id"] != held_b.json()["hold_id"]
    assert held_b.json()["customer_id"] == "CUST-B"
    assert item(client, "A")["available_to_promise"] == 6


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        (
            "PUT",
            "/availability/v1/channel-rules/R-1",
            {"sku": "A", "kind": "fence", "channel": "mp", "quantity": 5},
        ),
        ("GET", "/availability/v1/channel-rules", None),
        ("GET", "/availability/v1/items/A/movements", None),
        ("GET", "/availability/v1/channels/b2b/strategy", None),
        ("POST", "/availability/v1/reconciliation/runs", {}),
        ("GET", "/availability/v1/reconciliation/exceptions", None),
        (
            "POST",
            "/availability/v1/positions/A/counts",
            {"location_id": "WH1", "expected_on_hand": 10, "counted_on_hand": 9, "reference": "x"},
        ),
    ],
)
def test_administration_needs_the_admin_scope_which_a_bound_caller_never_has(
    client: TestClient[Any],
    settings: Settings,
    issuer: TestIssuer,
    method: str,
    path: str,
    body: Any,
) -> None:
    count(client, "A", "WH1", 10)
    before = books(client, "A")
    callers = [
        bound(issuer, "CUST-B"),  # a partner's transaction scopes
        bound(issuer, "CUST-B", f"{PARTNER} inventory:admin"),  # a token the registry refuses
        bound(issuer, "CUST-B", "admin"),  # the superscope counts for staff only
        {"Authorization": f"Bearer {issuer.token(PARTNER, audience='availability')}"},
    ]
    for headers in callers:
        response = client.request(method, path, json=body, headers=headers)
        assert response.status_code == 403, response.text
        assert response.json()["type"] == "/problems/insufficient-scope"
        assert response.headers["www-authenticate"].startswith('Bearer error="insufficient_scope"')
    assert books(client, "A") == before
    assert client.get("/availability/v1/channel-rules/R-1").status_code == 404

    if not path.endswith("/runs"):  # a run asks the ERP and the WMS, absent here
        staff = {"Authorization": f"Bearer {issuer.token('admin', audience='availability')}"}
        response = client.request(method, path, json=body, headers=staff)
        assert response.status_code < 300, response.text


def test_a_bound_token_with_the_superscope_gets_no_more_than_it_names(
    client: TestClient[Any], issuer: TestIssuer
) -> None:
    superscope = bound(issuer, "CUST-B", "admin")
    assert client.get("/availability/v1/items/A", headers=superscope).status_code == 403
    named = bound(issuer, "CUST-B", "admin inventory:read")
    assert client.get("/availability/v1/items/A", headers=named).status_code == 200


def test_the_fast_path_owns_allocations_as_the_framework_does(
    client: TestClient[Any], settings: Settings, issuer: TestIssuer
) -> None:
    framework = Framework(client.app)
    count(client, "A", "WH1", 10)
    a = bound(issuer, "CUST-A")

    def post(body: dict[str, Any], key: str) -> Any:
        return client.post(PATH, json=body, headers={**a, "Idempotency-Key": key})

    def body(order_id: str, **extra: Any) -> dict[str, Any]:
        lines = [{"sku": "A", "quantity": 1}]
        return {"order_id": order_id, "channel": "b2b", "lines": lines} | extra

    fast = post(body("SO-1"), "k-1")
    with framework.bypass():
        slow = post(body("SO-2"), "k-2")
    assert fast.status_code == slow.status_code == 201
    assert fast.json()["customer_id"] == slow.json()["customer_id"] == "CUST-A"

    for request, key in [
        (body("SO-3", customer_id="CUST-B"), "k-3"),  # another customer: 403
        (body("SO-1", customer_id="CUST-A"), "k-1"),  # naming its own: the same request
    ]:
        fast = post(request, key)
        with framework.bypass():
            slow = post(request, key)
        assert comparable(fast) == comparable(slow), request
    assert fast.headers["idempotent-replayed"] == "true"
    assert framework.posts == 0
    assert client.get("/availability/v1/allocations/SO-3").status_code == 404
    assert item(client, "A")["available_to_promise"] == 8


def test_allocations_made_before_they_carried_a_customer_are_staffs(
    settings: Settings, issuer: TestIssuer
) -> None:
    """A database of the previous version (no ``customer_id`` column) is upgraded at
    start; its allocations belong to nobody, so only staff sees them."""
    token = issuer.token(f"{PARTNER} inventory:admin", audience="availability")
    staff = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(settings=settings, key_source=issuer.key_source())) as client:
        client.headers.update(staff)
        count(client, "A", "WH1", 5)
        assert order(client, "SO-OLD", [("A", 2)]).status_code == 201

    async def drop_column() -> None:
        engine = create_async_engine(settings.database_url)
        async with engine.begin() as conn:
            await conn.execute(text("ALTER TABLE allocations DROP COLUMN customer_id"))
        await engine.dispose()

    asyncio.run(drop_column())
    with TestClient(create_app(settings=settings, key_source=issuer.key_source())) as client:
        client.headers.update(staff)
        old = client.get("/availability/v1/allocations/SO-OLD")
        assert old.status_code == 200 and old.json()["customer_id"] is None
        a = bound(issuer, "CUST-A")
        assert client.get("/availability/v1/allocations/SO-OLD", headers=a).status_code == 404
        assert allocate_as(client, a, "SO-NEW", 1).json()["customer_id"] == "CUST-A"
