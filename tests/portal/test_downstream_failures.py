"""A process API that is down or failing becomes DOWNSTREAM_UNAVAILABLE, and only the
fields that depend on it are lost."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from experience_apis.portal.app import create_app
from tests.portal.helpers import graphql
from tests.portal.upstreams import UpstreamState
from tests.support.ports import closed_port_url
from tests.support.tokens import TestIssuer


@pytest.fixture
async def portal_without_availability(
    portal_settings: Any, issuer: TestIssuer, upstreams: UpstreamState
) -> AsyncIterator[AsyncTestClient[Any]]:
    settings = msgspec.structs.replace(
        portal_settings,
        service_urls={**portal_settings.service_urls, "availability": closed_port_url()},
    )
    async with AsyncTestClient(app=create_app(settings, key_source=issuer.key_source())) as c:
        yield c


async def test_unreachable_process_api_is_downstream_unavailable(
    portal_without_availability: AsyncTestClient[Any], token: Callable[..., str]
) -> None:
    response = await graphql(
        portal_without_availability,
        '{ availability(skus: ["SKU-A"]) { sku } order(id: "O-1") { id } }',
        token(),
    )

    assert response.status_code == 200
    body = response.json()
    # availability is [ItemAvailability!]! (spec): its failure nulls the whole answer.
    assert body["data"] is None
    (error,) = body["errors"]
    assert error["path"] == ["availability"]
    assert error["extensions"] == {"code": "DOWNSTREAM_UNAVAILABLE", "service": "availability"}


async def test_failing_billing_loses_only_the_invoices(
    portal: AsyncTestClient[Any], upstreams: UpstreamState, token: Callable[..., str]
) -> None:
    upstreams.failing.add("billing")

    response = await graphql(
        portal,
        '{ a: order(id: "O-1") { id invoices { id } } b: order(id: "O-2") { id invoices { id } } }',
        token(),
    )

    body = response.json()
    assert body["data"] == {
        "a": {"id": "O-1", "invoices": None},
        "b": {"id": "O-2", "invoices": None},
    }
    assert sorted(tuple(e["path"]) for e in body["errors"]) == [
        ("a", "invoices"),
        ("b", "invoices"),
    ]
    assert {e["extensions"]["code"] for e in body["errors"]} == {"DOWNSTREAM_UNAVAILABLE"}
    # One batched request, retried by the kernel's client (503 is retryable), then given up.
    assert len(upstreams.requests_to("billing")) == 4


async def test_failing_order_api(
    portal: AsyncTestClient[Any], upstreams: UpstreamState, token: Callable[..., str]
) -> None:
    upstreams.failing.add("orders")

    response = await graphql(portal, '{ order(id: "O-1") { id } }', token())

    body = response.json()
    assert body["data"] == {"order": None}
    assert body["errors"][0]["extensions"]["code"] == "DOWNSTREAM_UNAVAILABLE"


async def test_process_api_breaking_its_contract_is_reported_not_guessed(
    portal: AsyncTestClient[Any], upstreams: UpstreamState, token: Callable[..., str]
) -> None:
    response = await graphql(portal, '{ order(id: "O-BAD") { id } }', token())

    body = response.json()
    assert body["data"] == {"order": None}
    assert body["errors"][0]["extensions"] == {
        "code": "DOWNSTREAM_CONTRACT_VIOLATION",
        "service": "order_to_ship",
    }
