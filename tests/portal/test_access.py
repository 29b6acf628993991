"""Who may use /graphql: the bearer token and the `portal` scope, checked before any
GraphQL runs; the GraphiQL page is the only thing served without a token."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from tests.portal.helpers import graphql
from tests.portal.upstreams import UpstreamState

QUERY = '{ order(id: "O-1") { id } }'


async def test_missing_token_is_refused(
    portal: AsyncTestClient[Any], upstreams: UpstreamState
) -> None:
    response = await graphql(portal, QUERY, None)

    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"] == "/problems/unauthorized"
    assert upstreams.seen == []


@pytest.mark.parametrize(
    "audience", [["orders", "billing", "availability"], ["graphql-other"]], ids=str
)
async def test_token_for_another_audience_is_refused(
    portal: AsyncTestClient[Any],
    upstreams: UpstreamState,
    token: Callable[..., str],
    audience: list[str],
) -> None:
    response = await graphql(portal, QUERY, token(audience=audience))

    assert response.status_code == 403  # a good token without the grant (decision 0023)
    assert response.json()["type"] == "/problems/insufficient-scope"
    assert response.headers["www-authenticate"].startswith('Bearer error="insufficient_scope"')
    assert upstreams.seen == []


async def test_token_without_portal_scope_is_refused(
    portal: AsyncTestClient[Any], upstreams: UpstreamState, token: Callable[..., str]
) -> None:
    response = await graphql(portal, QUERY, token("orders:read billing:read inventory:read"))

    assert response.status_code == 403
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"] == "/problems/insufficient-scope"
    assert upstreams.seen == []


async def test_process_api_applies_the_callers_own_scopes(
    portal: AsyncTestClient[Any], upstreams: UpstreamState, token: Callable[..., str]
) -> None:
    # `portal` lets the caller in; billing still refuses a token without billing:read.
    response = await graphql(
        portal, '{ order(id: "O-1") { id invoices { id } } }', token("portal orders:read")
    )

    body = response.json()
    assert body["data"] == {"order": {"id": "O-1", "invoices": None}}
    (error,) = body["errors"]
    assert error["path"] == ["order", "invoices"]
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert error["extensions"]["service"] == "billing"


async def test_graphiql_page_needs_no_token(portal: AsyncTestClient[Any]) -> None:
    response = await portal.get("/graphql", headers={"Accept": "text/html"})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "graphiql" in response.text.lower()


async def test_queries_over_get_are_refused(
    portal: AsyncTestClient[Any], upstreams: UpstreamState, token: Callable[..., str]
) -> None:
    # GET skips the bearer middleware (for the GraphiQL page), so it must not run queries.
    response = await portal.get(
        "/graphql",
        params={"query": QUERY},
        headers={"Authorization": f"Bearer {token()}", "Accept": "application/json"},
    )

    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    assert upstreams.seen == []


async def test_health_and_openapi_are_public(portal: AsyncTestClient[Any]) -> None:
    assert (await portal.get("/healthz")).status_code == 200
    assert (await portal.get("/readyz")).status_code == 200
    assert (await portal.get("/metrics")).status_code == 200
    spec = (await portal.get("/schema/openapi.json")).json()
    assert spec["paths"]["/graphql"]["post"]["security"] == [{"oauth2": ["portal"]}]
