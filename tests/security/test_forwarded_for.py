"""Headers a caller can write never change who the caller is. A forged
X-Forwarded-For (and its cousins) leaves the identity, the customer binding, the rate
limit key and the audit entry on the verified token's client."""

from __future__ import annotations

import asyncio
import uuid
from itertools import count

import httpx
import pytest

from tests.security.helpers import World, bearer, register_client
from tests.support.platform import PlatformClient
from tests.support.polling import eventually
from tests.support.problems import assert_problem

_addresses = count(1)


def _spoofed(world: World, platform: PlatformClient) -> dict[str, str]:
    """Each call claims to come from another address, and names someone else."""
    n = next(_addresses)
    address = f"203.0.{n // 250}.{n % 250 + 1}"
    return {
        "X-Forwarded-For": address,
        "X-Real-IP": address,
        "Forwarded": f"for={address}",
        "X-Client-Id": platform.demo_id,
        "X-Customer-Id": world.b.customer_id,
        "X-Forwarded-User": platform.demo_id,
    }


@pytest.mark.parametrize("via", ["gateway", "direct"])
def test_forged_forwarding_headers_do_not_change_identity(
    platform: PlatformClient, world: World, via: str
) -> None:
    a, b = world.a, world.b
    base = platform.gateway if via == "gateway" else platform.url("order_to_ship")
    with platform.client(bearer(platform, a.client), base=base) as api:
        theirs = api.get(f"/orders/v1/orders/{b.order_id}", headers=_spoofed(world, platform))
        assert_problem(theirs, 404, "/problems/order-not-found", correlated=False)
        listed = api.get("/orders/v1/orders", headers=_spoofed(world, platform))
        assert {order["customer_id"] for order in listed.json()["items"]} == {a.customer_id}
    portal = platform.gateway if via == "gateway" else platform.url("portal")
    with platform.client(bearer(platform, a.client), base=portal) as api:
        answer = api.post(
            "/graphql",
            json={
                "query": "query($id: ID!) { order(id: $id) { id } }",
                "variables": {"id": b.order_id},
            },
            headers=_spoofed(world, platform),
        )
        assert answer.json()["data"] == {"order": None}
        assert "errors" not in answer.json()


def test_forged_forwarded_for_does_not_dodge_the_rate_limit(
    platform: PlatformClient, world: World
) -> None:
    """A fresh bronze client sends a burst, every request from a "new" address. Keyed on
    the address, each request would be some address's first; keyed on the client (the
    rule), the burst overruns the client's budget. The burst is three times the
    tightest window's limit, sent at once, so the margin does not depend on speed."""
    creds = register_client(platform, "orders:read", tier="bronze")
    token = bearer(platform, creds)
    with platform.client(token) as api:
        first = api.get("/orders/v1/orders", params={"limit": 1}, headers=_spoofed(world, platform))
    assert first.status_code == 200, first.text
    assert "ratelimit-limit" in first.headers
    burst = 3 * int(first.headers["ratelimit-limit"]) + 20
    spoofed = [_spoofed(world, platform) for _ in range(burst)]

    async def send_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(
            base_url=platform.gateway,
            headers={"Authorization": f"Bearer {token}"},
            limits=httpx.Limits(max_connections=burst),
            timeout=60,
        ) as client:
            return await asyncio.gather(
                *(client.get("/orders/v1/orders", params={"limit": 1}, headers=h) for h in spoofed)
            )

    answers = asyncio.run(send_all())
    assert {a.status_code for a in answers} <= {200, 429}, [a.text for a in answers]
    refused = [a for a in answers if a.status_code == 429]
    assert refused, "a new X-Forwarded-For per request escaped the client's limit"
    for answer in refused:
        assert_problem(answer, 429, correlated=False)
        assert int(answer.headers["retry-after"]) >= 0


def test_forged_forwarded_for_does_not_change_the_audit_entry(
    platform: PlatformClient, world: World, admin: httpx.Client
) -> None:
    correlation = f"sec-{uuid.uuid4().hex}"
    with platform.client(bearer(platform, world.a.client)) as api:
        headers = _spoofed(world, platform) | {"X-Correlation-Id": correlation}
        assert api.get("/orders/v1/orders", headers=headers).status_code == 200
    audit = admin.get("/audit", params={"limit": 1})
    assert audit.status_code == 200, audit.text

    def logged() -> list[dict[str, object]]:  # the audit log is written every 0.2 s
        page = admin.get("/audit", params={"limit": 500}).json()["items"]
        return [entry for entry in page if entry.get("correlation_id") == correlation]

    entries = eventually(logged)
    assert entries, "the call is missing from the audit log"
    for entry in entries:
        assert entry["client_id"] == world.a.client.client_id, entry
        assert entry["customer_id"] == world.a.customer_id, entry
