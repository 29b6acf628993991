"""The breaking-change diff: one case per rule, and additions that must pass."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tally.contracts import breaking_changes, compare, release

CONTRACTS = Path(__file__).resolve().parents[2] / "contracts"
Json = dict[str, Any]


def base() -> Json:
    """A small document in the shape Litestar exports: refs, nullable unions, bounds."""
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "t", "version": "1"},
        "paths": {
            "/orders/v1/orders": {
                "get": {
                    "operationId": "listOrders",
                    "parameters": [
                        {
                            "name": "customer_id",
                            "in": "query",
                            "required": False,
                            "schema": {"oneOf": [{"type": "string"}, {"type": "null"}]},
                        },
                        {
                            "name": "limit",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "integer", "minimum": 1, "maximum": 500},
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "ok",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Page"}
                                }
                            },
                        },
                        "401": {"description": "no token", "content": problem},
                    },
                    "security": [{"oauth2": ["orders:read"]}],
                },
                "post": {
                    "operationId": "placeOrder",
                    "parameters": [
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "required": False,
                            "schema": {"type": "string", "maxLength": 255},
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/OrderIn"}}
                        },
                    },
                    "responses": {
                        "201": {
                            "description": "created",
                            "headers": {"Location": {"schema": {"type": "string"}}},
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Order"}
                                }
                            },
                        }
                    },
                    "security": [{"oauth2": ["orders:write"]}],
                },
            },
            "/orders/v1/orders/{order_id}": {
                "get": {
                    "operationId": "getOrder",
                    "parameters": [
                        {
                            "name": "order_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "ok",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Order"}
                                }
                            },
                        }
                    },
                    "security": [{"oauth2": ["orders:read"]}],
                }
            },
            "/healthz": {
                "get": {"operationId": "health", "responses": {"200": {"description": "ok"}}}
            },
        },
        "components": {
            "schemas": {
                "Problem": {"type": "object", "properties": {"type": {"type": "string"}}},
                "OrderIn": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["customer_id", "lines"],
                    "properties": {
                        "customer_id": {"type": "string", "maxLength": 64},
                        "note": {"oneOf": [{"type": "string"}, {"type": "null"}]},
                        "policy": {"type": "string", "enum": ["reject", "partial"]},
                        "lines": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/LineIn"},
                        },
                    },
                },
                "LineIn": {
                    "type": "object",
                    "required": ["sku", "quantity"],
                    "properties": {
                        "sku": {"type": "string"},
                        "quantity": {"type": "integer", "minimum": 1, "maximum": 1000},
                        "tags": {
                            "type": "object",
                            "additionalProperties": {"type": "string"},
                        },
                    },
                },
                "Order": {
                    "type": "object",
                    "required": ["order_id", "status", "lines"],
                    "properties": {
                        "order_id": {"type": "string"},
                        "status": {"type": "string", "enum": ["pending", "shipped"]},
                        "lines": {"type": "array", "items": {"$ref": "#/components/schemas/Line"}},
                        "parent": {
                            "oneOf": [{"$ref": "#/components/schemas/Order"}, {"type": "null"}]
                        },
                    },
                },
                "Line": {
                    "type": "object",
                    "required": ["sku", "quantity"],
                    "properties": {"sku": {"type": "string"}, "quantity": {"type": "integer"}},
                },
                "Page": {
                    "type": "object",
                    "required": ["items", "next_cursor"],
                    "properties": {
                        "items": {"type": "array", "items": {"$ref": "#/components/schemas/Order"}},
                        "next_cursor": {"oneOf": [{"type": "string"}, {"type": "null"}]},
                    },
                },
            }
        },
    }


def schemas(doc: Json) -> Json:
    result: Json = doc["components"]["schemas"]
    return result


def op(doc: Json, method: str, path: str = "/orders/v1/orders") -> Json:
    result: Json = doc["paths"][path][method]
    return result


def changed(mutate: Callable[[Json], None]) -> list[tuple[str, str]]:
    old = base()
    new = copy.deepcopy(old)
    mutate(new)
    return [(c.rule, c.where) for c in breaking_changes(old, new)]


def rules(mutate: Callable[[Json], None]) -> set[str]:
    return {rule for rule, _ in changed(mutate)}


def test_identical_documents_have_no_breaking_change() -> None:
    assert breaking_changes(base(), base()) == []


@pytest.mark.parametrize("api", ["erp", "wms", "availability", "orders", "billing"])
def test_each_committed_contract_is_compatible_with_itself(api: str) -> None:
    document = json.loads((CONTRACTS / "openapi" / api / "v1.json").read_text())
    assert breaking_changes(document, copy.deepcopy(document)) == []


# --- one case per rule ---------------------------------------------------------------


def test_removed_path() -> None:
    assert changed(lambda d: d["paths"].pop("/orders/v1/orders/{order_id}")) == [
        ("removed-path", "/orders/v1/orders/{order_id}")
    ]


def test_removed_operation() -> None:
    assert changed(lambda d: d["paths"]["/orders/v1/orders"].pop("post")) == [
        ("removed-operation", "POST /orders/v1/orders")
    ]


def test_removed_response_property_everywhere_it_is_answered() -> None:
    found = changed(lambda d: schemas(d)["Order"]["properties"].pop("status"))
    assert ("removed-response-property", "GET /orders/v1/orders/{order_id} 200 response") in found
    assert ("removed-response-property", "POST /orders/v1/orders 201 response") in found
    assert ("removed-response-property", "GET /orders/v1/orders 200 response.items[]") in found


def test_response_property_no_longer_required() -> None:
    assert rules(lambda d: schemas(d)["Line"]["required"].remove("quantity")) == {
        "removed-response-property"
    }


def test_removed_response_enum_value() -> None:
    def mutate(d: Json) -> None:
        schemas(d)["Order"]["properties"]["status"]["enum"] = ["pending"]

    assert ("removed-enum-value", "POST /orders/v1/orders 201 response.status") in changed(mutate)


def test_removed_request_enum_value() -> None:
    def mutate(d: Json) -> None:
        schemas(d)["OrderIn"]["properties"]["policy"]["enum"] = ["reject"]

    assert changed(mutate) == [("removed-enum-value", "POST /orders/v1/orders request body.policy")]


def test_new_required_request_property() -> None:
    def mutate(d: Json) -> None:
        schemas(d)["LineIn"]["properties"]["uom"] = {"type": "string"}
        schemas(d)["LineIn"]["required"].append("uom")

    assert changed(mutate) == [
        ("new-required-property", "POST /orders/v1/orders request body.lines[]")
    ]


def test_optional_request_property_made_required() -> None:
    assert rules(lambda d: schemas(d)["OrderIn"]["required"].append("note")) == {
        "new-required-property"
    }


def test_new_required_query_parameter() -> None:
    def mutate(d: Json) -> None:
        op(d, "get")["parameters"].append(
            {"name": "channel", "in": "query", "required": True, "schema": {"type": "string"}}
        )

    assert changed(mutate) == [("new-required-parameter", "GET /orders/v1/orders")]


def test_header_parameter_made_required_whatever_its_case() -> None:
    def mutate(d: Json) -> None:
        parameter = op(d, "post")["parameters"][0]
        parameter["name"] = "idempotency-key"
        parameter["required"] = True

    assert changed(mutate) == [("new-required-parameter", "POST /orders/v1/orders")]


def test_new_path_parameter_changes_the_path() -> None:
    def mutate(d: Json) -> None:
        d["paths"]["/orders/v1/orders/{order_id}/{line}"] = d["paths"].pop(
            "/orders/v1/orders/{order_id}"
        )

    assert rules(mutate) == {"removed-path"}


def test_removed_query_parameter() -> None:
    assert rules(lambda d: op(d, "get")["parameters"].pop(0)) == {"removed-parameter"}


def test_request_body_made_required() -> None:
    old = base()
    old["paths"]["/orders/v1/orders/{order_id}"]["post"] = {"responses": {}}
    new = copy.deepcopy(old)
    new["paths"]["/orders/v1/orders/{order_id}"]["post"]["requestBody"] = {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
    assert [c.rule for c in breaking_changes(old, new)] == ["new-required-body"]


def test_request_type_changed() -> None:
    def mutate(d: Json) -> None:
        schemas(d)["OrderIn"]["properties"]["customer_id"] = {"type": "integer"}

    assert ("narrowed-type", "POST /orders/v1/orders request body.customer_id") in changed(mutate)


def test_request_no_longer_accepts_null() -> None:
    def mutate(d: Json) -> None:
        schemas(d)["OrderIn"]["properties"]["note"] = {"type": "string"}

    assert changed(mutate) == [("narrowed-type", "POST /orders/v1/orders request body.note")]


def test_response_may_now_be_null() -> None:
    def mutate(d: Json) -> None:
        schemas(d)["Order"]["properties"]["order_id"] = {
            "oneOf": [{"type": "string"}, {"type": "null"}]
        }

    assert rules(mutate) == {"changed-type"}


def test_lower_maximum() -> None:
    def mutate(d: Json) -> None:
        schemas(d)["LineIn"]["properties"]["quantity"]["maximum"] = 999

    assert changed(mutate) == [
        ("narrowed-constraint", "POST /orders/v1/orders request body.lines[].quantity")
    ]


def test_higher_minimum_on_a_query_parameter() -> None:
    def mutate(d: Json) -> None:
        op(d, "get")["parameters"][1]["schema"]["minimum"] = 10

    assert changed(mutate) == [
        ("narrowed-constraint", "GET /orders/v1/orders query parameter 'limit'")
    ]


def test_smaller_max_length_on_a_header() -> None:
    def mutate(d: Json) -> None:
        op(d, "post")["parameters"][0]["schema"]["maxLength"] = 64

    assert rules(mutate) == {"narrowed-constraint"}


def test_new_bound_where_there_was_none() -> None:
    def mutate(d: Json) -> None:
        schemas(d)["LineIn"]["properties"]["sku"]["pattern"] = "^[A-Z]+$"

    assert rules(mutate) == {"narrowed-constraint"}


def test_enum_imposed_on_free_text() -> None:
    def mutate(d: Json) -> None:
        schemas(d)["LineIn"]["properties"]["sku"]["enum"] = ["A"]

    assert rules(mutate) == {"narrowed-constraint"}


def test_additional_properties_tightened() -> None:
    def mutate(d: Json) -> None:
        schemas(d)["LineIn"]["additionalProperties"] = False

    assert changed(mutate) == [
        ("narrowed-constraint", "POST /orders/v1/orders request body.lines[]")
    ]


def test_additional_properties_value_narrowed() -> None:
    def mutate(d: Json) -> None:
        schemas(d)["LineIn"]["properties"]["tags"]["additionalProperties"]["maxLength"] = 8

    assert changed(mutate) == [
        ("narrowed-constraint", "POST /orders/v1/orders request body.lines[].tags.*")
    ]


def test_removed_request_property_when_unknown_fields_are_refused() -> None:
    assert rules(lambda d: schemas(d)["OrderIn"]["properties"].pop("note")) == {
        "removed-request-property"
    }


def test_new_scope_required() -> None:
    def mutate(d: Json) -> None:
        op(d, "get")["security"] = [{"oauth2": ["orders:read", "orders:audit"]}]

    found = breaking_changes(base(), _mutated(mutate))
    assert [(c.rule, c.where) for c in found] == [("security-changed", "GET /orders/v1/orders")]
    assert "oauth2:orders:audit" in found[0].detail


def test_security_added_to_a_public_operation() -> None:
    def mutate(d: Json) -> None:
        op(d, "get", "/healthz")["security"] = [{"oauth2": []}]

    assert changed(mutate) == [("security-added", "GET /healthz")]


def test_removed_success_response_header_and_media_type() -> None:
    def mutate(d: Json) -> None:
        response = op(d, "post")["responses"]["201"]
        response.pop("headers")
        response["content"] = {"application/xml": response["content"]["application/json"]}

    assert rules(mutate) == {"removed-response-header", "removed-media-type"}


def test_removed_success_response() -> None:
    def mutate(d: Json) -> None:
        responses = op(d, "post")["responses"]
        responses["200"] = responses.pop("201")

    assert rules(mutate) == {"removed-response"}


def test_readable_line() -> None:
    change = breaking_changes(
        base(), _mutated(lambda d: d["paths"]["/orders/v1/orders"].pop("get"))
    )[0]
    assert str(change) == "GET /orders/v1/orders: the operation is gone [removed-operation]"


# --- additions and relaxations break no one ---------------------------------------------


def _mutated(mutate: Callable[[Json], None]) -> Json:
    document = base()
    mutate(document)
    return document


def _add_optional_query(d: Json) -> None:
    op(d, "get")["parameters"].append(
        {"name": "status", "in": "query", "required": False, "schema": {"type": "string"}}
    )


def _add_optional_request_property(d: Json) -> None:
    schemas(d)["OrderIn"]["properties"]["po_number"] = {"type": "string"}


def _add_response_property(d: Json) -> None:
    schemas(d)["Order"]["properties"]["currency"] = {"type": "string"}
    schemas(d)["Order"]["required"].append("currency")


def _add_path_and_operation(d: Json) -> None:
    d["paths"]["/orders/v1/orders/{order_id}/cancel"] = {"post": {"responses": {}}}
    d["paths"]["/orders/v1/orders/{order_id}"]["delete"] = {"responses": {}}


def _add_request_enum_value(d: Json) -> None:
    schemas(d)["OrderIn"]["properties"]["policy"]["enum"].append("ship_complete")


def _widen_bounds(d: Json) -> None:
    quantity = schemas(d)["LineIn"]["properties"]["quantity"]
    quantity["maximum"] = 10_000
    quantity.pop("minimum")
    schemas(d)["OrderIn"]["properties"]["customer_id"]["maxLength"] = 128


def _rename_path_parameter(d: Json) -> None:
    item = d["paths"].pop("/orders/v1/orders/{order_id}")
    item["get"]["parameters"][0]["name"] = "id"
    d["paths"]["/orders/v1/orders/{id}"] = item


def _relax_security(d: Json) -> None:
    op(d, "get")["security"] = [{"oauth2": ["orders:read"]}, {"oauth2": ["portal"]}]
    op(d, "post")["security"] = [{"oauth2": []}]


def _document_more_errors(d: Json) -> None:
    op(d, "post")["responses"]["422"] = {"description": "unprocessable"}
    op(d, "get")["responses"].pop("401")


def _loosen_unknown_fields(d: Json) -> None:
    schemas(d)["OrderIn"].pop("additionalProperties")


def _narrow_a_response(d: Json) -> None:
    schemas(d)["Page"]["properties"]["next_cursor"] = {"type": "string"}
    schemas(d)["Order"]["properties"]["status"]["enum"].append("cancelled")


def _accept_null_in_request(d: Json) -> None:
    schemas(d)["LineIn"]["properties"]["sku"] = {"oneOf": [{"type": "string"}, {"type": "null"}]}


def _number_accepts_integers(d: Json) -> None:
    schemas(d)["LineIn"]["properties"]["quantity"] = {"type": "number"}


@pytest.mark.parametrize(
    "mutate",
    [
        _add_optional_query,
        _add_optional_request_property,
        _add_response_property,
        _add_path_and_operation,
        _add_request_enum_value,
        _widen_bounds,
        _rename_path_parameter,
        _relax_security,
        _document_more_errors,
        _loosen_unknown_fields,
        _narrow_a_response,
        _accept_null_in_request,
        _number_accepts_integers,
    ],
)
def test_compatible_change_passes(mutate: Callable[[Json], None]) -> None:
    assert breaking_changes(base(), _mutated(mutate)) == []


# --- the released baseline -------------------------------------------------------------


def _files(document: Json) -> dict[str, str]:
    return {"openapi/orders/v1.json": json.dumps(document), "events/catalog.json": "{}"}


def test_release_publishes_a_new_major_then_refuses_a_breaking_change(tmp_path: Path) -> None:
    released, refused = release(_files(base()), baseline_dir=tmp_path)
    assert [r.key for r in released] == ["orders/v1"] and refused == []
    assert json.loads((tmp_path / "orders" / "v1.json").read_text()) == base()

    broken = _mutated(lambda d: d["paths"].pop("/orders/v1/orders/{order_id}"))
    [report] = compare(_files(broken), baseline_dir=tmp_path)
    assert [c.rule for c in report.breaking] == ["removed-path"]
    released, refused = release(_files(broken), baseline_dir=tmp_path)
    assert released == [] and [r.key for r in refused] == ["orders/v1"]
    assert json.loads((tmp_path / "orders" / "v1.json").read_text()) == base()


def test_release_moves_the_baseline_on_compatible_changes(tmp_path: Path) -> None:
    release(_files(base()), baseline_dir=tmp_path)
    added = _mutated(_add_response_property)
    [report] = compare(_files(added), baseline_dir=tmp_path)
    assert report.changed and report.breaking == []
    release(_files(added), baseline_dir=tmp_path)
    # From now on the added property is a promise: removing it breaks.
    [report] = compare(_files(base()), baseline_dir=tmp_path)
    assert [c.rule for c in report.breaking] == ["removed-response-property"] * 3


def test_accepted_breaking_change_is_logged_with_its_reason(tmp_path: Path) -> None:
    release(_files(base()), baseline_dir=tmp_path)
    broken = _mutated(lambda d: d["paths"]["/orders/v1/orders"].pop("post"))
    released, refused = release(
        _files(broken), baseline_dir=tmp_path, accept_breaking="never released to a partner"
    )
    assert [r.key for r in released] == ["orders/v1"] and refused == []
    log = (tmp_path / "ACCEPTED.md").read_text()
    assert "never released to a partner" in log
    assert "POST /orders/v1/orders: the operation is gone [removed-operation]" in log
    assert compare(_files(broken), baseline_dir=tmp_path)[0].breaking == []


def test_committed_baseline_covers_every_published_major() -> None:
    from gateway.contracts.versions import find
    from tally.contracts.baseline import BASELINE_DIR

    committed = {
        f"openapi/{p.parent.name}/{p.name}": p.read_text()
        for p in (CONTRACTS / "openapi").glob("*/v*.json")
    }
    reports = compare(committed, baseline_dir=BASELINE_DIR)
    assert {r.key for r in reports} >= {
        "erp/v1",
        "wms/v1",
        "availability/v1",
        "orders/v1",
        "billing/v1",
    }
    published = [r for r in reports if getattr(find(r.api, r.major), "status", None) != "preview"]
    assert all(r.released for r in published)
