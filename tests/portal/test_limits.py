"""The portal's limits (experience_apis/portal/limits): depth, tokens and aliases at their
boundaries, the query cost (requested before execution, actual after, refused above the
budget), introspection switched by a setting, unexpected errors masked outside
development with the correlation id, and the parser and validation caches.

Exact numbers come from a small schema of its own built with the very extension list
the portal uses (``portal_extensions()``); the portal app is then checked end to end
with its settings."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
import pytest
import strawberry
from graphql import parse, validate
from graphql.language import Lexer, Source, TokenKind
from litestar.testing import AsyncTestClient
from strawberry.extensions.validation_cache import _get_validate_cache

from experience_apis.portal.app import create_app
from experience_apis.portal.limits import (
    VALIDATION_CACHE_SIZE,
    Guard,
    guarding,
    portal_extensions,
    validation_rules,
)
from experience_apis.portal.limits.cost import requested_cost
from experience_apis.portal.limits.guard import DEFAULT_OPERATIONS_DIR
from experience_apis.portal.limits.persisted import OperationRegistry
from experience_apis.portal.schema import schema as portal_schema
from experience_apis.portal.upstream import ProcessApis
from shared.correlation import correlation_id
from shared.settings import load_settings
from tests.portal.helpers import graphql
from tests.portal.upstreams import UpstreamState
from tests.support.tokens import TestIssuer

# --- a schema of its own, with the portal's extensions ---------------------------------

CALLS: list[str] = []


@strawberry.type
class Line:
    sku: str


@strawberry.type
class Node:
    id: strawberry.ID
    lines: list[Line]


@strawberry.type
class Edge:
    cursor: str | None
    node: Node


@strawberry.type
class PageInfo:
    has_next_page: bool


@strawberry.type
class Connection:
    edges: list[Edge]
    page_info: PageInfo
    total_count: int


@strawberry.type
class Deep:
    name: str

    @strawberry.field
    def deep(self) -> Deep:
        return Deep(name=self.name + "+")


def _nodes(first: int = 10, last: int | None = None) -> Connection:
    CALLS.append("nodes")
    found = [
        Node(id=strawberry.ID(f"N{i}"), lines=[Line(sku="A"), Line(sku="B")]) for i in range(3)
    ]
    return Connection(
        edges=[Edge(cursor=None, node=node) for node in found],
        page_info=PageInfo(has_next_page=False),
        total_count=len(found),
    )


def _items(first: int | None = None) -> list[Line]:
    return [Line(sku=f"S{i}") for i in range(min(first or 2, 2))]


def _boom() -> Deep:
    raise RuntimeError("secret: the database password is hunter2")


@strawberry.type
class Query:
    nodes: Connection = strawberry.field(resolver=_nodes)
    items: list[Line] = strawberry.field(resolver=_items)
    boom: Deep | None = strawberry.field(resolver=_boom)

    @strawberry.field
    def deep(self) -> Deep:
        return Deep(name="d")

    @strawberry.field
    def echo(self, values: list[int]) -> int:
        return len(values)


SCHEMA = strawberry.Schema(query=Query, extensions=portal_extensions())


async def run(
    query: str, guard: Guard | None = None, variables: dict[str, Any] | None = None
) -> Any:
    with guarding(guard or Guard()):
        return await SCHEMA.execute(query, variable_values=variables)


def codes(result: Any) -> list[str]:
    return [str((e.extensions or {}).get("code")) for e in result.errors or []]


def deep_query(levels: int) -> str:
    """``deep`` nested so that the leaf ``name`` sits at ``levels`` (root field: 0)."""
    return "{ " + "deep { " * levels + "name" + " }" * levels + " }"


def token_count(query: str) -> int:
    lexer = Lexer(Source(query))
    count = 0
    while lexer.advance().kind != TokenKind.EOF:
        count += 1
    return count


# --- depth -----------------------------------------------------------------------------


@pytest.mark.parametrize("max_depth", [3, 10])
async def test_depth_at_the_limit_runs_one_deeper_is_refused(max_depth: int) -> None:
    at_limit = await run(deep_query(max_depth), Guard(max_depth=max_depth))
    beyond = await run(deep_query(max_depth + 1), Guard(max_depth=max_depth))

    assert at_limit.errors is None
    assert beyond.data is None
    assert codes(beyond) == ["MAX_DEPTH_EXCEEDED"]
    assert f"maximum operation depth of {max_depth}" in beyond.errors[0].message


async def test_the_default_depth_is_ten() -> None:
    assert (await run(deep_query(10))).errors is None
    assert codes(await run(deep_query(11))) == ["MAX_DEPTH_EXCEEDED"]


# --- aliases ---------------------------------------------------------------------------


def aliased(count: int) -> str:
    return "{ " + " ".join(f"a{i}: __typename" for i in range(count)) + " }"


async def test_aliases_at_the_limit_run_one_more_is_refused() -> None:
    assert (await run(aliased(30))).errors is None  # the default: 30
    refused = await run(aliased(31))
    assert codes(refused) == ["MAX_ALIASES_EXCEEDED"]
    assert (await run(aliased(5), Guard(max_aliases=5))).errors is None
    assert codes(await run(aliased(6), Guard(max_aliases=5))) == ["MAX_ALIASES_EXCEEDED"]


# --- tokens ----------------------------------------------------------------------------


async def test_tokens_at_the_limit_parse_one_fewer_allowed_is_refused() -> None:
    query = "query Nodes($n: Int = 3) { nodes(first: $n) { totalCount } }"
    count = token_count(query)

    assert (await run(query, Guard(max_tokens=count))).errors is None
    refused = await run(query, Guard(max_tokens=count - 1))
    assert refused.data is None
    assert codes(refused) == ["MAX_TOKENS_EXCEEDED"]
    assert f"more than {count - 1} tokens" in refused.errors[0].message


async def test_the_default_token_limit_is_two_thousand() -> None:
    def echo(count: int) -> str:  # { echo ( values : [ ...count ints ] ) }: 9 + count
        return "{ echo(values: [" + ", ".join(["1"] * count) + "]) }"

    query, too_many = echo(1_991), echo(1_992)
    assert (token_count(query), token_count(too_many)) == (2_000, 2_001)

    assert (await run(query)).errors is None
    assert codes(await run(too_many)) == ["MAX_TOKENS_EXCEEDED"]


# --- cost ------------------------------------------------------------------------------

CONNECTION = """query Nodes($n: Int) {
  nodes(first: $n) { edges { cursor node { id lines { sku } } } pageInfo { hasNextPage } totalCount }
}"""


def cost(result: Any) -> dict[str, int]:
    return dict(result.extensions["cost"])


async def test_a_connection_costs_its_size_times_its_items_and_reports_the_actual() -> None:
    result = await run(CONNECTION, variables={"n": 5})

    assert result.errors is None
    # nodes 1 + 5 x (edge with its node 1 + lines 1) + pageInfo 1
    # actual: nodes 1 + 3 edges x (1 + 2 lines) + pageInfo 1
    assert cost(result) == {"requestedQueryCost": 12, "actualQueryCost": 11, "budget": 1000}


@pytest.mark.parametrize(
    ("query", "variables", "requested"),
    [
        ("{ __typename }", None, 0),
        ("{ deep { name } }", None, 1),
        ("{ deep { deep { deep { name } } } }", None, 3),
        # The argument's default (10), a variable's default, a literal, cut to 100.
        ("{ nodes { edges { node { id } } } }", None, 11),
        ("query($n: Int = 4) { nodes(first: $n) { edges { node { id } } } }", None, 5),
        ("{ nodes(first: 1000) { edges { node { id } } } }", None, 101),
        ("{ nodes(first: -5) { edges { node { id } } } }", None, 1),
        ("{ nodes(last: 7, first: 2) { totalCount edges { node { id } } } }", None, 8),
        # A sized list: that many objects; an unsized one: one.
        ("{ items(first: 4) { sku } }", None, 4),
        ("{ items { sku } }", None, 20),  # sized, no value, no default: 20
        ("{ nodes(first: 2) { edges { node { lines { sku } } } } }", None, 5),
        # Fragments add their fields; @skip / @include honoured; the same key once.
        ("{ ... on Query { deep { name } } deep { name } }", None, 1),
        ("fragment F on Deep { deep { name } } { deep { ...F } }", None, 2),
        ("query($s: Boolean!) { deep @skip(if: $s) { name } }", {"s": True}, 0),
        ("{ deep @include(if: false) { name } items(first: 2) { sku } }", None, 2),
        # Introspection costs nothing.
        ("{ __schema { types { name fields { name } } } }", None, 0),
    ],
)
async def test_requested_cost(query: str, variables: dict[str, Any] | None, requested: int) -> None:
    result = await run(query, variables=variables)
    assert result.errors is None, result.errors
    assert cost(result)["requestedQueryCost"] == requested


async def test_the_actual_cost_counts_each_object_that_resolved() -> None:
    aliased_objects = await run("{ a: deep { name } b: deep { deep { name } } boom { name } }")
    one_page = await run("{ nodes(first: 50) { edges { node { id } } } items(first: 9) { sku } }")

    # boom resolved to null (with its error): it costs what was asked, not what came.
    assert cost(aliased_objects)["requestedQueryCost"] == 4
    assert cost(aliased_objects)["actualQueryCost"] == 3
    # 3 nodes came of the 50 asked; 2 items of the 9.
    assert cost(one_page)["requestedQueryCost"] == 1 + 50 + 9
    assert cost(one_page)["actualQueryCost"] == 1 + 3 + 2


async def test_cost_at_the_budget_runs_one_above_is_refused_before_execution() -> None:
    at_budget = await run(CONNECTION, Guard(cost_budget=12), {"n": 5})
    assert at_budget.errors is None
    assert cost(at_budget) == {"requestedQueryCost": 12, "actualQueryCost": 11, "budget": 12}

    CALLS.clear()
    refused = await run(CONNECTION, Guard(cost_budget=11), {"n": 5})

    assert CALLS == []  # nothing resolved
    assert refused.data is None
    (error,) = refused.errors
    assert error.extensions == {
        "code": "MAX_COST_EXCEEDED",
        "cost": {"requestedQueryCost": 12, "budget": 11},
    }
    assert "12" in error.message and "11" in error.message
    assert cost(refused) == {"requestedQueryCost": 12, "actualQueryCost": 0, "budget": 11}


async def test_an_invalid_query_reports_no_cost() -> None:
    result = await run("{ nope }")
    assert result.errors
    assert "cost" not in (result.extensions or {})


# --- masking ---------------------------------------------------------------------------


async def test_unexpected_errors_are_masked_with_the_correlation_id_outside_development() -> None:
    correlation_id.set("cid-test-1")
    masked = await run("{ boom { name } }", Guard(mask_errors=True))
    shown = await run("{ boom { name } }", Guard(mask_errors=False))

    (error,) = masked.errors
    assert error.message == "Internal error."
    assert error.extensions == {"code": "INTERNAL_SERVER_ERROR", "correlation_id": "cid-test-1"}
    assert error.path == ["boom"]
    assert "hunter2" in shown.errors[0].message  # development shows what went wrong


async def test_refusals_of_the_limits_are_not_masked() -> None:
    refused = await run(deep_query(4), Guard(max_depth=3, mask_errors=True))
    assert codes(refused) == ["MAX_DEPTH_EXCEEDED"]
    assert "maximum operation depth" in refused.errors[0].message


# --- caches ----------------------------------------------------------------------------


async def test_the_validation_cache_hits_across_requests() -> None:
    cached: Any = _get_validate_cache(VALIDATION_CACHE_SIZE)  # an lru_cache
    query = "{ deep { deep { name } } items(first: 1) { sku } }"
    await run(query)
    before = cached.cache_info()
    await run(query)
    after = cached.cache_info()

    assert after.hits == before.hits + 1
    assert after.misses == before.misses


# --- the portal app, end to end ----------------------------------------------------------


@pytest.fixture
def portal_with(
    portal_settings: Any, issuer: TestIssuer, upstreams: UpstreamState
) -> Callable[..., Any]:
    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[AsyncTestClient[Any]]:
        settings = msgspec.structs.replace(portal_settings, **overrides)
        app = create_app(settings, key_source=issuer.key_source())
        async with AsyncTestClient(app=app) as client:
            yield client

    return start


async def test_every_answer_reports_its_cost(
    portal: AsyncTestClient[Any], token: Callable[..., str]
) -> None:
    body = (await graphql(portal, "{ __typename }", token())).json()

    assert body == {
        "data": {"__typename": "Query"},
        "extensions": {"cost": {"requestedQueryCost": 0, "actualQueryCost": 0, "budget": 1000}},
    }


async def test_the_portal_refuses_above_its_budget_before_calling_anything(
    portal_with: Callable[..., Any], upstreams: UpstreamState, token: Callable[..., str]
) -> None:
    query = "{ viewer { orders(first: 50) { edges { node { id } } } } }"  # 1 + 1 + 50
    async with portal_with(portal_cost_budget=51) as portal:
        body = (await graphql(portal, query, token())).json()

    assert body["data"] is None
    assert body["errors"][0]["extensions"] == {
        "code": "MAX_COST_EXCEEDED",
        "cost": {"requestedQueryCost": 52, "budget": 51},
    }
    assert upstreams.seen == []


async def test_the_portal_applies_its_depth_alias_and_token_settings(
    portal_with: Callable[..., Any], upstreams: UpstreamState, token: Callable[..., str]
) -> None:
    async with portal_with(portal_max_depth=1) as portal:
        deep = await graphql(portal, "{ viewer { orders { totalCount } } }", token())
    async with portal_with(portal_max_aliases=2) as portal:
        aliases = await graphql(portal, "{ a: __typename b: __typename c: __typename }", token())
    async with portal_with(portal_max_tokens=8) as portal:
        tokens = await graphql(portal, "{ a: __typename b: __typename c }", token())
        fine = await graphql(portal, "{ a: __typename b: __typename }", token())

    assert [e["extensions"]["code"] for e in deep.json()["errors"]] == ["MAX_DEPTH_EXCEEDED"]
    assert [e["extensions"]["code"] for e in aliases.json()["errors"]] == ["MAX_ALIASES_EXCEEDED"]
    assert [e["extensions"]["code"] for e in tokens.json()["errors"]] == ["MAX_TOKENS_EXCEEDED"]
    assert fine.json()["data"] == {"a": "Query", "b": "Query"}
    assert upstreams.seen == []


INTROSPECTION = "{ __schema { queryType { name } } }"


async def test_introspection_is_on_in_development(
    portal: AsyncTestClient[Any], token: Callable[..., str]
) -> None:
    body = (await graphql(portal, INTROSPECTION, token())).json()
    assert body["data"] == {"__schema": {"queryType": {"name": "Query"}}}


async def test_introspection_is_off_in_production_unless_switched_on(
    portal_with: Callable[..., Any], token: Callable[..., str]
) -> None:
    production = {"environment": "production", "portal_registered_only": False}
    async with portal_with(**production) as portal:
        off = (await graphql(portal, INTROSPECTION, token())).json()
        typename = (await graphql(portal, "{ __typename }", token())).json()
    async with portal_with(**production, portal_introspection=True) as portal:
        on = (await graphql(portal, INTROSPECTION, token())).json()
    async with portal_with(portal_introspection=False) as portal:
        off_in_development = (await graphql(portal, INTROSPECTION, token())).json()

    assert off["data"] is None
    assert {e["extensions"]["code"] for e in off["errors"]} == {"INTROSPECTION_DISABLED"}
    assert typename["data"] == {"__typename": "Query"}  # __typename is not introspection
    assert on["data"] == {"__schema": {"queryType": {"name": "Query"}}}
    assert off_in_development["data"] is None


async def test_errors_are_masked_outside_development_with_the_correlation_id(
    portal_with: Callable[..., Any], token: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def boom(*args: Any) -> Any:
        raise RuntimeError("secret: upstream said 10.0.0.7 is down")

    monkeypatch.setattr(ProcessApis, "account", boom)
    headers = {"X-Correlation-Id": "cid-portal-42"}
    async with portal_with(environment="staging") as portal:
        staging = await graphql(portal, "{ viewer { name } }", token(), headers=headers)
    async with portal_with() as portal:
        development = await graphql(portal, "{ viewer { name } }", token(), headers=headers)

    (masked,) = staging.json()["errors"]
    assert masked["message"] == "Internal error."
    assert masked["extensions"] == {
        "code": "INTERNAL_SERVER_ERROR",
        "correlation_id": "cid-portal-42",
    }
    assert staging.headers["x-correlation-id"] == "cid-portal-42"
    assert "10.0.0.7" not in staging.text
    assert "10.0.0.7" in development.json()["errors"][0]["message"]


async def test_expected_errors_are_not_masked_in_production(
    portal_with: Callable[..., Any], upstreams: UpstreamState, token: Callable[..., str]
) -> None:
    upstreams.failing.add("availability")
    query = '{ availability(skus: ["SKU-A"]) { sku } }'
    async with portal_with(environment="production", portal_registered_only=False) as portal:
        body = (await graphql(portal, query, token())).json()

    assert body["errors"][0]["extensions"]["code"] == "DOWNSTREAM_UNAVAILABLE"


def test_every_example_operation_passes_the_default_limits() -> None:
    """The operations shipped beside the SDL (the registry) stay within the defaults."""
    guard = Guard()
    registry = OperationRegistry.load(DEFAULT_OPERATIONS_DIR)
    assert list(registry), "the example operations ship in contracts/graphql/examples"
    rules = list(validation_rules(guard.max_depth, guard.max_aliases, guard.introspection))
    for op in registry:
        document = parse(op.query, max_tokens=guard.max_tokens)
        assert validate(portal_schema._schema, document, rules) == [], op.file
        variables = json.loads(op.variables) if op.variables else {}
        requested = requested_cost(portal_schema._schema, document, None, variables)
        assert requested is not None and requested <= guard.cost_budget, (op.file, requested)


@pytest.mark.parametrize("body", ['"{ __typename }"', "5", "null", "true"])
async def test_a_body_that_is_not_a_json_object_is_a_400_problem(
    portal: AsyncTestClient[Any], token: Callable[..., str], body: str
) -> None:
    response = await portal.post(
        "/graphql",
        content=body,
        headers={"Authorization": f"Bearer {token()}", "Content-Type": "application/json"},
    )

    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")


def test_the_guard_comes_from_the_settings_and_their_environment_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    development = Guard.from_settings(load_settings("portal", data_dir=tmp_path))
    assert (development.introspection, development.mask_errors) == (True, False)
    assert development.registered_only is False
    assert (development.max_depth, development.max_tokens) == (10, 2_000)
    assert (development.max_aliases, development.cost_budget) == (30, 1_000)

    monkeypatch.setenv("TALLY_ENVIRONMENT", "production")
    monkeypatch.setenv("TALLY_PORTAL_COST_BUDGET", "500")
    monkeypatch.setenv("TALLY_PORTAL_MAX_DEPTH", "7")
    monkeypatch.setenv("TALLY_PORTAL_MAX_TOKENS", "900")
    monkeypatch.setenv("TALLY_PORTAL_MAX_ALIASES", "4")
    monkeypatch.setenv("TALLY_PORTAL_OPERATIONS_DIR", str(tmp_path))
    production = Guard.from_settings(load_settings("portal", data_dir=tmp_path))
    assert (production.introspection, production.mask_errors) == (False, True)
    assert production.registered_only is True
    assert (production.max_depth, production.max_tokens) == (7, 900)
    assert (production.max_aliases, production.cost_budget) == (4, 500)
    assert list(production.registry) == []

    monkeypatch.setenv("TALLY_PORTAL_INTROSPECTION", "on")
    monkeypatch.setenv("TALLY_PORTAL_REGISTERED_ONLY", "false")
    switched = Guard.from_settings(load_settings("portal", data_dir=tmp_path))
    assert (switched.introspection, switched.registered_only) == (True, False)

    staging = {
        "TALLY_ENVIRONMENT": "staging",
        "TALLY_PORTAL_INTROSPECTION": "",
        "TALLY_PORTAL_REGISTERED_ONLY": "",
    }
    for name, value in staging.items():
        monkeypatch.setenv(name, value)
    guard = Guard.from_settings(load_settings("portal", data_dir=tmp_path))
    assert (guard.introspection, guard.mask_errors, guard.registered_only) == (False, True, False)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TALLY_ENVIRONMENT", "prod"),
        ("TALLY_PORTAL_INTROSPECTION", "maybe"),
        ("TALLY_PORTAL_COST_BUDGET", "-1"),
        ("TALLY_PORTAL_MAX_DEPTH", "ten"),
    ],
)
def test_a_bad_guard_setting_stops_the_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=name):
        load_settings("portal", data_dir=tmp_path)
