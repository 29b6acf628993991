"""The three findings of issue 14, as a partner would try them: two clients bound to
their own customers (``tally clients create --customer ...``) with
``orders:read orders:write inventory:read inventory:write``, real tokens, through the
gateway (and straight at the availability service). Another customer's allocation is
an unknown one, releasing it changes nothing, the ledger and the channel rules are
administration (``inventory:admin``), which a bound client cannot even be given."""

from __future__ import annotations

import subprocess
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.security.helpers import Creds, World, atp, bearer, place, register_client
from tests.support.platform import PlatformClient
from tests.support.problems import assert_problem

PARTNER_SCOPES = "orders:read orders:write inventory:read inventory:write"


@dataclass(frozen=True)
class Partners:
    a: Creds
    b: Creds
    a_order: str  # A's order, placed by A's client: its allocation is live


@pytest.fixture(scope="module")
def partners(platform: PlatformClient, world: World) -> Partners:
    a = register_client(platform, PARTNER_SCOPES, customer=world.a.customer_id)
    b = register_client(platform, PARTNER_SCOPES, customer=world.b.customer_id)
    with platform.client(bearer(platform, a)) as api:
        order_id = place(api, world.a.customer_id, world.sku)
    return Partners(a, b, order_id)


def _base(platform: PlatformClient, via: str) -> str:
    return platform.gateway if via == "gateway" else platform.url("availability")


def _books(admin: httpx.Client, sku: str) -> tuple[Any, Any]:
    """The item's positions (less the freshness stamp) and its whole ledger."""
    item = admin.get(f"/availability/v1/items/{sku}").json()
    item.pop("as_of", None)
    ledger = admin.get(f"/availability/v1/items/{sku}/movements", params={"limit": 500})
    assert ledger.status_code == 200, ledger.text
    return item, ledger.json()


def _without_volatile(problem: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in problem.items() if k not in ("detail", "instance", "correlation_id")}


def _insufficient_scope(response: httpx.Response) -> None:
    assert_problem(response, 403, "/problems/insufficient-scope", correlated=False)
    assert response.headers["www-authenticate"].startswith('Bearer error="insufficient_scope"')


@pytest.mark.parametrize("via", ["gateway", "direct"])
def test_b_cannot_read_as_allocation_nor_list_the_ledger_that_names_it(
    platform: PlatformClient, world: World, partners: Partners, via: str
) -> None:
    theirs_id = partners.a_order
    with platform.client(bearer(platform, partners.b), base=_base(platform, via)) as b:
        theirs = b.get(f"/availability/v1/allocations/{theirs_id}")
        unknown = b.get(f"/availability/v1/allocations/ORD-{uuid.uuid4().hex}")
        assert_problem(theirs, 404, "/problems/allocation-not-found", correlated=False)
        assert_problem(unknown, 404, "/problems/allocation-not-found", correlated=False)
        assert _without_volatile(theirs.json()) == _without_volatile(unknown.json())
        assert world.a.customer_id not in theirs.text
        _insufficient_scope(b.get(f"/availability/v1/items/{world.sku}/movements"))
        assert b.get(f"/availability/v1/items/{world.sku}").status_code == 200  # ATP stays
    with platform.client(bearer(platform, partners.a), base=_base(platform, via)) as a:
        mine = a.get(f"/availability/v1/allocations/{theirs_id}")
        assert mine.status_code == 200, mine.text
        assert mine.json()["customer_id"] == world.a.customer_id  # from the order service


def test_b_releasing_as_allocation_is_404_and_changes_nothing(
    platform: PlatformClient, world: World, partners: Partners, admin: httpx.Client
) -> None:
    before, available = _books(admin, world.sku), atp(admin, world.sku)
    with platform.client(bearer(platform, partners.b)) as b:
        for attempt in range(2):  # a retry is refused alike
            released = b.post(
                f"/availability/v1/allocations/{partners.a_order}/release",
                headers={"Idempotency-Key": f"steal-{attempt}-{uuid.uuid4().hex}"},
            )
            assert_problem(released, 404, "/problems/allocation-not-found", correlated=False)
    assert atp(admin, world.sku) == available
    assert _books(admin, world.sku) == before
    allocation = admin.get(f"/availability/v1/allocations/{partners.a_order}").json()
    assert allocation["status"] == "allocated"
    assert all(line["released"] == 0 for line in allocation["lines"])


def test_b_cannot_fence_stock_with_a_channel_rule(
    platform: PlatformClient, world: World, partners: Partners, admin: httpx.Client
) -> None:
    rule_id = f"R-{uuid.uuid4().hex[:10]}"
    rule = {"sku": world.sku, "kind": "fence", "channel": "marketplace", "quantity": 50}
    before = atp(admin, world.sku)
    with platform.client(bearer(platform, partners.b)) as b:
        _insufficient_scope(b.put(f"/availability/v1/channel-rules/{rule_id}", json=rule))
        _insufficient_scope(b.get("/availability/v1/channel-rules", params={"sku": world.sku}))
    assert_problem(admin.get(f"/availability/v1/channel-rules/{rule_id}"), 404, correlated=False)
    assert (
        admin.get("/availability/v1/channel-rules", params={"sku": world.sku}).json()["items"] == []
    )
    assert atp(admin, world.sku) == before


def test_the_operator_cannot_give_a_bound_client_an_administration_scope(
    platform: PlatformClient, world: World
) -> None:
    for scopes in (f"{PARTNER_SCOPES} inventory:admin", "admin", "portal portal:staff"):
        with pytest.raises(subprocess.CalledProcessError) as refused:
            register_client(platform, scopes, customer=world.b.customer_id)
        said = " ".join((refused.value.stderr + refused.value.stdout).split())  # rich wraps
        assert "administration or staff scopes" in said
