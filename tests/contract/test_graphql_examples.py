"""The example operations beside the SDL (contracts/graphql/examples/, one per use case):
each one names one operation after its file and validates against the portal's schema
as the code builds it (graphql-core ``validate``), so a schema change that breaks an
example fails here before a partner copies it. They run end to end in
tests/e2e/test_portal_gql.py."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest
from graphql import (
    GraphQLSchema,
    OperationDefinitionNode,
    build_schema,
    parse,
    validate,
)

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "contracts" / "graphql" / "examples"
EXAMPLES = sorted(EXAMPLES_DIR.glob("*.graphql"))
# The use cases of issue 18: each must keep its example.
USE_CASES = {
    "viewer_orders": "query",
    "viewer_account": "query",
    "viewer_invoices": "query",
    "order_detail": "query",
    "availability": "query",
    "items_search": "query",
    "item": "query",
    "statement": "query",
    "place_order": "mutation",
    "cancel_order": "mutation",
    "request_return": "mutation",
    "create_cart_hold": "mutation",
    "release_cart_hold": "mutation",
    "place_order_from_hold": "mutation",
    "order_updates": "subscription",
    "shipment_updates": "subscription",
    "invoice_updates": "subscription",
}


@cache
def code_schema() -> GraphQLSchema:
    """The SDL the code builds (what `tally contracts export` writes)."""
    from experience_apis.portal.schema import sdl

    return build_schema(sdl())


def operation(path: Path) -> OperationDefinitionNode:
    [definition] = [
        d for d in parse(path.read_text()).definitions if isinstance(d, OperationDefinitionNode)
    ]
    return definition


def camel(stem: str) -> str:
    return "".join(part.capitalize() for part in stem.split("_"))


def test_every_use_case_has_its_example() -> None:
    assert {p.stem for p in EXAMPLES} >= set(USE_CASES)
    for stem, kind in USE_CASES.items():
        assert operation(EXAMPLES_DIR / f"{stem}.graphql").operation.value == kind, stem


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_the_example_names_one_operation_after_its_file(example: Path) -> None:
    definition = operation(example)
    assert definition.name is not None
    assert definition.name.value == camel(example.stem)
    assert example.read_text().startswith("# "), "say what the use case is, and its variables"


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_the_example_validates_against_the_schema(example: Path) -> None:
    errors = validate(code_schema(), parse(example.read_text()))
    assert [e.message for e in errors] == []
