"""A token is good for the APIs named in its ``aud`` only: used against another API it
is a 403 ``insufficient_scope`` problem+json (a good token without the grant, decision
0023) at the gateway and at the service itself, and writes nothing."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.security.helpers import World, atp, bearer, register_client
from tests.support.platform import PlatformClient
from tests.support.problems import assert_problem

INSUFFICIENT_SCOPE = "/problems/insufficient-scope"


@pytest.fixture(scope="module")
def billing_only(platform: PlatformClient) -> str:
    """A client allowed billing:read only, so its tokens name the billing API only."""
    return bearer(platform, register_client(platform, "billing:read"))


def _orders_of(admin: httpx.Client, customer_id: str) -> object:
    return admin.get("/orders/v1/orders", params={"customer_id": customer_id}).json()


@pytest.mark.parametrize("via", ["gateway", "direct"])
def test_a_billing_token_is_refused_by_the_orders_api_and_writes_nothing(
    platform: PlatformClient, world: World, admin: httpx.Client, billing_only: str, via: str
) -> None:
    base = platform.gateway if via == "gateway" else platform.url("order_to_ship")
    before, stock = _orders_of(admin, world.a.customer_id), atp(admin, world.sku)
    with platform.client(billing_only, base=base) as api:
        assert_problem(api.get("/orders/v1/orders"), 403, INSUFFICIENT_SCOPE, correlated=False)
        assert_problem(
            api.get(f"/orders/v1/orders/{world.a.order_id}"),
            403,
            INSUFFICIENT_SCOPE,
            correlated=False,
        )
        order = {
            "customer_id": world.a.customer_id,
            "channel": "edi",
            "lines": [{"sku": world.sku, "quantity": 1}],
        }
        placed = api.post(
            "/orders/v1/orders", json=order, headers={"Idempotency-Key": uuid.uuid4().hex}
        )
        assert_problem(placed, 403, INSUFFICIENT_SCOPE, correlated=False)
        assert placed.headers["www-authenticate"].startswith('Bearer error="insufficient_scope"')
    assert _orders_of(admin, world.a.customer_id) == before
    assert atp(admin, world.sku) == stock
    # The same token does what its audience allows: the 403 was the audience.
    with platform.client(billing_only) as api:
        assert api.get("/billing/v1/invoices").status_code == 200


@pytest.mark.parametrize("via", ["gateway", "direct"])
def test_a_billing_token_cannot_query_the_portal(
    platform: PlatformClient, billing_only: str, via: str
) -> None:
    base = platform.gateway if via == "gateway" else platform.url("portal")
    with platform.client(billing_only, base=base) as api:
        response = api.post("/graphql", json={"query": "{ orders { nextCursor } }"})
    assert_problem(response, 403, INSUFFICIENT_SCOPE, correlated=False)


@pytest.mark.parametrize(
    ("service", "path"),
    [("erp", "/erp/v1/customers/{customer}"), ("wms", "/wms/v1/warehouses")],
)
@pytest.mark.parametrize("via", ["gateway", "direct"])
def test_a_portal_token_never_reaches_the_system_apis(
    platform: PlatformClient, world: World, service: str, path: str, via: str
) -> None:
    token = bearer(platform, world.a.client)
    base = platform.gateway if via == "gateway" else platform.url(service)
    with platform.client(token, base=base) as api:
        response = api.get(path.format(customer=world.a.customer_id))
    assert_problem(response, 403, INSUFFICIENT_SCOPE, correlated=False)
